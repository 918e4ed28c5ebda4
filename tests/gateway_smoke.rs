//! Cross-worker chat: clients that landed on different workers share a room.

mod common;

use common::ws::Ws;
use common::Instance;
use serde_json::json;

#[test]
fn chat_room_across_two_workers() {
    let s = Instance::new("chat", 2, &["websocket"]).start();
    // Connect until clients sit on two different workers (the id's first 16 hex digits).
    let mut clients: Vec<(Ws, String)> = Vec::new();
    for i in 0..40 {
        let mut ws = Ws::connect(&s.addr("websocket"), "/");
        ws.send_text(
            &json!({"type":"login","client_name":format!("u{i}"),"room_id":"r"}).to_string(),
        );
        let me = ws.recv_json_type("login");
        let id = me["client_id"].as_str().unwrap().to_owned();
        // The newcomer's list is complete whichever worker answered.
        assert_eq!(
            me["client_list"].as_object().unwrap().len(),
            clients.len() + 1
        );
        clients.push((ws, id));
        let incs: std::collections::HashSet<&str> =
            clients.iter().map(|(_, id)| &id[..16]).collect();
        if incs.len() == 2 && clients.len() >= 4 {
            break;
        }
    }
    let incs: std::collections::HashSet<String> =
        clients.iter().map(|(_, id)| id[..16].to_owned()).collect();
    assert_eq!(incs.len(), 2, "clients never spread over both workers");
    let n = clients.len();
    let sender = clients[0].1.clone();
    clients[0]
        .0
        .send_text(&json!({"type":"say","to_client_id":"all","content":"to everyone"}).to_string());
    for (ws, _) in clients.iter_mut() {
        let m = ws.recv_json_type("say");
        assert_eq!(m["content"], "to everyone");
        assert_eq!(m["from_client_id"], sender.as_str());
    }
    // A private message from the last client to the first crosses workers if they differ.
    let target = clients[0].1.clone();
    clients[n - 1]
        .0
        .send_text(&json!({"type":"say","to_client_id":target,"content":"psst"}).to_string());
    // workerman-chat marks a private message for its receiver (chat.rs, like Events.php).
    assert_eq!(
        clients[0].0.recv_json_type("say")["content"],
        "<b>对你说: </b>psst"
    );
}
