<?php
// A room chat in workerman-chat's message format, for the room broadcast benchmark
// (kefu-load broadcast): {"type":"login","client_name":N,"room_id":R} joins room R and tells
// the room; {"type":"say","to_client_id":"all","content":C} goes to everyone in the sender's
// room, sender included. Private messages and the client list are left out.
use GatewayWorker\Lib\Gateway;

class Events
{
    public static function onMessage($client_id, $message)
    {
        $m = json_decode($message, true);
        if (!is_array($m) || !isset($m['type'])) {
            return;
        }
        if ($m['type'] === 'login' && isset($m['room_id'], $m['client_name'])) {
            $room = (string)$m['room_id'];
            $_SESSION['room_id'] = $room;
            $_SESSION['client_name'] = (string)$m['client_name'];
            Gateway::joinGroup($client_id, $room);
            Gateway::sendToGroup($room, json_encode([
                'type' => 'login',
                'client_id' => $client_id,
                'client_name' => $_SESSION['client_name'],
                'time' => date('Y-m-d H:i:s'),
            ]));
        } elseif ($m['type'] === 'say' && isset($_SESSION['room_id'], $m['content'])) {
            Gateway::sendToGroup($_SESSION['room_id'], json_encode([
                'type' => 'say',
                'from_client_id' => $client_id,
                'from_client_name' => $_SESSION['client_name'],
                'to_client_id' => 'all',
                'content' => (string)$m['content'],
                'time' => date('Y-m-d H:i:s'),
            ]));
        }
    }
}
