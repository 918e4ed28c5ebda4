<?php
// Class loading for the PHP side of tests/gatewayworker.rs and tools/bench_gatewayworker.sh.
//
// GW_VENDOR names a `vendor` folder holding workerman/workerman, workerman/gateway-worker and
// workerman/gatewayclient (a `composer require` of them, or a plain copy of the three packages).
// Composer's own autoloader is used when the folder has one; otherwise the packages' PSR-4
// prefixes are mapped by hand. With GW_EVENTS_DIR set, classes without a namespace (the
// BusinessWorker's Events handler) are looked up in that folder.
$vendor = getenv('GW_VENDOR');
if (!$vendor || !is_dir($vendor . '/workerman/gateway-worker')) {
    fwrite(STDERR, "autoload.php: set GW_VENDOR to a vendor folder with workerman/gateway-worker\n");
    exit(2);
}
$vendor = rtrim($vendor, '/');
if (is_file($vendor . '/autoload.php')) {
    require $vendor . '/autoload.php';
}
$prefixes = [
    'Workerman\\Coroutine\\' => [$vendor . '/workerman/coroutine/src/'],
    'Workerman\\' => [$vendor . '/workerman/workerman/src/'],
    'GatewayWorker\\' => [$vendor . '/workerman/gateway-worker/src/'],
    'GatewayClient\\' => [$vendor . '/workerman/gatewayclient/'],
];
$events = getenv('GW_EVENTS_DIR');
spl_autoload_register(static function (string $class) use ($prefixes, $events): void {
    if ($events && strpos($class, '\\') === false) {
        $file = rtrim($events, '/') . '/' . $class . '.php';
        if (is_file($file)) {
            require $file;
        }
        return;
    }
    foreach ($prefixes as $prefix => $dirs) {
        if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
            continue;
        }
        $file = str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        foreach ($dirs as $dir) {
            if (is_file($dir . $file)) {
                require $dir . $file;
                return;
            }
        }
    }
});
