<?php
// GatewayWorker's own Register and Gateway (library code, unchanged) in one Workerman master:
// the reference kefu is compared with, in tests and benchmarks.
//
//   GW_VENDOR=... GW_REGISTER_PORT=1238 GW_WS_PORT=7272 GW_INNER_PORT=2300 \
//     [GW_COUNT=1] [GW_SECRET=] [GW_RUN_DIR=/tmp/ref] php tests/php/register_gateway.php start [-d]
require __DIR__ . '/autoload.php';

$dir = getenv('GW_RUN_DIR') ?: sys_get_temp_dir() . '/kefu-gw-reference';
if (!is_dir($dir)) {
    mkdir($dir, 0700, true);
}
Workerman\Worker::$pidFile = "$dir/reference.pid";
Workerman\Worker::$logFile = "$dir/reference.log";
Workerman\Worker::$stdoutFile = "$dir/reference.stdout";

$secret = (string)getenv('GW_SECRET');
$registerAt = '127.0.0.1:' . (int)(getenv('GW_REGISTER_PORT') ?: 1238);

$register = new GatewayWorker\Register("text://$registerAt");
$register->secretKey = $secret;

$gw = new GatewayWorker\Gateway('websocket://127.0.0.1:' . (int)(getenv('GW_WS_PORT') ?: 7272));
$gw->name = 'Gateway';
$gw->count = max(1, (int)getenv('GW_COUNT'));
$gw->lanIp = '127.0.0.1';
$gw->startPort = (int)(getenv('GW_INNER_PORT') ?: 2300);
$gw->registerAddress = $registerAt;
$gw->secretKey = $secret;

Workerman\Worker::runAll();
