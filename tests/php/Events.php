<?php
// Test handler for tests/gatewayworker.rs: run by GatewayWorker's own BusinessWorker against
// kefu and against GatewayWorker's own Register + Gateway, so the two transcripts can be
// compared. Replies carry the BusinessWorker's name (GW_NAME) where routing matters.
use GatewayWorker\Lib\Gateway;

class Events
{
    public static function onConnect($client_id)
    {
        Gateway::sendToClient($client_id, json_encode(['init', ['client_id' => $client_id]]));
    }

    public static function onWebSocketConnect($client_id, $data)
    {
        Gateway::sendToCurrentClient(json_encode([
            'ws',
            $data['get'],
            $data['server']['REQUEST_URI'],
            $data['server']['HTTP_X_TEST'] ?? null,
            $data['cookie'],
        ]));
    }

    public static function onMessage($client_id, $message)
    {
        $name = getenv('GW_NAME') ?: 'BusinessWorker';
        switch ($message) {
            case 'who':
                Gateway::sendToCurrentClient($name);
                return;
            case 'setup':
                Gateway::bindUid($client_id, 'u1');
                Gateway::joinGroup($client_id, 'g1');
                Gateway::joinGroup($client_id, 'g2');
                Gateway::setSession($client_id, ['a' => 1, 'list' => ['x', 'y']]);
                Gateway::updateSession($client_id, ['b' => 'two']);
                Gateway::sendToCurrentClient('ready');
                return;
            case 'calls':
                $r = [
                    'getSession' => Gateway::getSession($client_id),
                    'isOnline' => Gateway::isOnline($client_id),
                    'isUidOnline' => Gateway::isUidOnline('u1'),
                    'getClientIdByUid' => Gateway::getClientIdByUid('u1'),
                    'getUidByClientId' => Gateway::getUidByClientId($client_id),
                    'getClientIdCountByGroup' => Gateway::getClientIdCountByGroup('g1'),
                    'getClientSessionsByGroup' => Gateway::getClientSessionsByGroup('g1'),
                    'getAllClientIdCount' => Gateway::getAllClientIdCount(),
                    'getAllClientSessions' => Gateway::getAllClientSessions(),
                    'getAllUidList' => Gateway::getAllUidList(),
                    'getAllUidCount' => Gateway::getAllUidCount(),
                    'getAllGroupIdList' => Gateway::getAllGroupIdList(),
                    'getUidListByGroup' => Gateway::getUidListByGroup('g1'),
                    'getUidCountByGroup' => Gateway::getUidCountByGroup('g1'),
                    'getClientIdListByGroup' => Gateway::getClientIdListByGroup('g1'),
                    'getAllClientIdList' => Gateway::getAllClientIdList(),
                    'getAllGroupUidList' => Gateway::getAllGroupUidList(),
                    'getAllGroupClientIdList' => Gateway::getAllGroupClientIdList(),
                    'getAllGroupUidCount' => Gateway::getAllGroupUidCount(),
                    'getAllGroupClientIdCount' => Gateway::getAllGroupClientIdCount(),
                ];
                Gateway::sendToCurrentClient(json_encode($r));
                return;
            case 'sends':
                Gateway::sendToUid('u1', 'to-uid');
                Gateway::sendToGroup('g1', 'to-group');
                Gateway::sendToGroup('g1', 'not-me', $client_id);
                Gateway::sendToAll('to-all');
                Gateway::sendToAll('to-list', [$client_id]);
                Gateway::sendToClient($client_id, 'to-client');
                Gateway::sendToCurrentClient('sent');
                return;
            case 'raws':
                // Raw sends: the gateway writes these bytes as they are. For a WebSocket
                // client they are a whole text frame built here; re-framed by the gateway
                // they would arrive as a message starting with 0x81.
                $frame = static fn (string $s): string => "\x81" . chr(strlen($s)) . $s;
                Gateway::sendToClient($client_id, $frame('raw-one'), true);
                Gateway::sendToCurrentClient($frame('raw-current'), true);
                Gateway::sendToUid('u1', $frame('raw-uid'), true);
                Gateway::sendToGroup('g1', $frame('raw-group'), null, true);
                Gateway::sendToAll($frame('raw-list'), [$client_id], null, true);
                Gateway::sendToCurrentClient('raws-done');
                return;
            case 'rawtext':
                // For a text client: a raw line keeps its own "\n" and gets no second one.
                Gateway::sendToCurrentClient("raw-line\n", true);
                Gateway::sendToCurrentClient('after-raw');
                return;
            case 'undo':
                Gateway::leaveGroup($client_id, 'g2');
                Gateway::unbindUid($client_id, 'u1');
                Gateway::ungroup('g1');
                Gateway::sendToCurrentClient('undone');
                return;
            case 'after':
                Gateway::sendToCurrentClient(json_encode([
                    Gateway::getAllGroupIdList(),
                    Gateway::getAllUidList(),
                    Gateway::getClientIdCountByGroup('g1'),
                ]));
                return;
            case 'bye':
                Gateway::closeCurrentClient('farewell');
                return;
        }
        Gateway::sendToCurrentClient($name . ':' . $message);
    }

    public static function onClose($client_id)
    {
    }
}
