<?php
// One call of the GatewayClient library (unchanged), as a web backend makes it, printed as one
// JSON line: {"ok":true,"result":...}, or {"ok":false,"error":"..."} with exit status 1.
//
//   GW_VENDOR=... php tests/php/gateway_client.php REGISTER METHOD [JSON_ARRAY_OF_ARGS] [SECRET]
//   e.g. php tests/php/gateway_client.php 127.0.0.1:1238 sendToUid '["42","hello"]'
require __DIR__ . '/autoload.php';

if ($argc < 3) {
    fwrite(STDERR, "usage: php gateway_client.php REGISTER METHOD [JSON_ARGS] [SECRET]\n");
    exit(2);
}
GatewayClient\Gateway::$registerAddress = $argv[1];
GatewayClient\Gateway::$secretKey = $argv[4] ?? '';
try {
    $args = json_decode($argv[3] ?? '[]', true, 64, JSON_THROW_ON_ERROR);
    $result = call_user_func_array([GatewayClient\Gateway::class, $argv[2]], $args);
    print json_encode(['ok' => true, 'result' => $result], JSON_UNESCAPED_UNICODE) . "\n";
} catch (Throwable $e) {
    print json_encode(['ok' => false, 'error' => get_class($e) . ': ' . $e->getMessage()]) . "\n";
    exit(1);
}
