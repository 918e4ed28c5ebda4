<?php
// A handler in the seeds' style for tests and the echo benchmark: greets with
// ["init",{"client_id":...}], then "uid:NAME" binds (and keeps it in the session), "join:ROOM"
// joins and answers with the room's size, "room:ROOM:TEXT" sends TEXT to the room; anything
// else comes back unchanged.
use GatewayWorker\Lib\Gateway;

class Events
{
    public static function onConnect($client_id)
    {
        Gateway::sendToClient($client_id, json_encode(['init', ['client_id' => $client_id]]));
    }

    public static function onMessage($client_id, $message)
    {
        $parts = explode(':', $message, 3);
        switch (count($parts) > 1 ? $parts[0] : '') {
            case 'uid':
                $uid = substr($message, 4);
                Gateway::bindUid($client_id, $uid);
                Gateway::setSession($client_id, ['uid' => $uid]);
                Gateway::sendToCurrentClient("bound $uid");
                return;
            case 'join':
                $room = substr($message, 5);
                Gateway::joinGroup($client_id, $room);
                Gateway::sendToCurrentClient("joined $room " . Gateway::getClientIdCountByGroup($room));
                return;
            case 'room':
                if (count($parts) === 3) {
                    Gateway::sendToGroup($parts[1], $parts[2]);
                    return;
                }
        }
        Gateway::sendToCurrentClient($message);
    }

    public static function onClose($client_id)
    {
    }
}
