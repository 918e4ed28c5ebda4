<?php
// GatewayWorker's BusinessWorker (library code, unchanged) as a test or benchmark peer: asks
// the Register at GW_REGISTER for the gateways, links to each and runs the Events class found
// in GW_EVENTS_DIR.
//
//   GW_VENDOR=... GW_REGISTER=127.0.0.1:1238 GW_EVENTS_DIR=tests/php \
//     [GW_NAME=BusinessWorker] [GW_COUNT=1] [GW_SECRET=] [GW_RUN_DIR=/tmp/bw] \
//     php tests/php/business_worker.php start [-d]        (or: stop, with the same GW_RUN_DIR)
require __DIR__ . '/autoload.php';

if (!getenv('GW_EVENTS_DIR')) {
    fwrite(STDERR, "business_worker.php: GW_EVENTS_DIR must name the folder of Events.php\n");
    exit(2);
}
$dir = getenv('GW_RUN_DIR') ?: sys_get_temp_dir() . '/kefu-gw-business';
if (!is_dir($dir)) {
    mkdir($dir, 0700, true);
}
Workerman\Worker::$pidFile = "$dir/business.pid";
Workerman\Worker::$logFile = "$dir/business.log";
Workerman\Worker::$stdoutFile = "$dir/business.stdout";

$bw = new GatewayWorker\BusinessWorker();
$bw->name = getenv('GW_NAME') ?: 'BusinessWorker';
$bw->count = max(1, (int)getenv('GW_COUNT'));
$bw->registerAddress = getenv('GW_REGISTER') ?: '127.0.0.1:1238';
$bw->secretKey = (string)getenv('GW_SECRET');
$bw->eventHandler = 'Events';

Workerman\Worker::runAll();
