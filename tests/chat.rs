//! The workerman-chat compatible app on one worker, over WebSocket and the text protocol.

mod common;

use common::ws::Ws;
use common::{signal, Instance};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

fn login(ws: &mut Ws, name: &str, room: Value) -> Value {
    ws.send_text(&json!({"type":"login","client_name":name,"room_id":room}).to_string());
    ws.recv_json_type("login")
}

#[test]
fn rooms_public_private_and_logout() {
    let s = Instance::new("chat", 1, &["websocket"]).start();
    let mut tom = Ws::connect(&s.addr("websocket"), "/");
    let t = login(&mut tom, "Tom", json!(1));
    let tom_id = t["client_id"].as_str().unwrap().to_owned();
    assert_eq!(t["client_list"][&tom_id], "Tom");

    let mut ann = Ws::connect(&s.addr("websocket"), "/");
    let a = login(&mut ann, "<Ann>", json!("1"));
    let ann_id = a["client_id"].as_str().unwrap().to_owned();
    assert_eq!(a["client_list"].as_object().unwrap().len(), 2);
    assert_eq!(a["client_name"], "&lt;Ann&gt;");
    // Tom hears Ann arrive.
    let seen = tom.recv_json_type("login");
    assert_eq!(seen["client_id"], ann_id.as_str());

    // A third client in another room hears nothing of room 1.
    let mut bob = Ws::connect(&s.addr("websocket"), "/");
    login(&mut bob, "Bob", json!(2));

    ann.send_text(
        &json!({"type":"say","to_client_id":"all","content":"hi <all>\nline2"}).to_string(),
    );
    for c in [&mut tom, &mut ann] {
        let m = c.recv_json_type("say");
        assert_eq!(m["from_client_id"], ann_id.as_str());
        // workerman-chat: nl2br(htmlspecialchars($content)).
        assert_eq!(m["content"], "hi &lt;all&gt;<br />\nline2");
        assert_eq!(m["to_client_id"], "all");
    }

    // Private: only Tom and the sender get it, with workerman-chat's prefixes.
    ann.send_text(
        &json!({"type":"say","to_client_id":tom_id,"to_client_name":"<Tom>","content":"psst"})
            .to_string(),
    );
    assert_eq!(tom.recv_json_type("say")["content"], "<b>对你说: </b>psst");
    let echo = ann.recv_json_type("say");
    assert_eq!(echo["to_client_id"], tom_id.as_str());
    assert_eq!(echo["content"], "<b>你对&lt;Tom&gt;说: </b>psst");
    // Private across rooms reaches the client, as workerman-chat's sendToClient does.
    bob.send_text(
        &json!({"type":"say","to_client_id":tom_id,"to_client_name":"Tom","content":"x"})
            .to_string(),
    );
    assert_eq!(tom.recv_json_type("say")["content"], "<b>对你说: </b>x");
    assert_eq!(bob.recv_json_type("say")["content"], "<b>你对Tom说: </b>x");
    // An id that is not online gets an error.
    bob.send_text(&json!({"type":"say","to_client_id":"0".repeat(32),"content":"x"}).to_string());
    assert_eq!(bob.recv_json_type("error")["code"], 4004);

    // Bad input gets an error, and the connection lives on.
    bob.send_text("{not json");
    assert_eq!(bob.recv_json_type("error")["code"], 4000);
    bob.send_text(&json!({"type":"say","to_client_id":"all","content":"room2"}).to_string());
    assert_eq!(bob.recv_json_type("say")["content"], "room2");

    drop(ann);
    let out = tom.recv_json_type("logout");
    assert_eq!(out["from_client_id"], ann_id.as_str());
}

#[test]
fn say_before_login_is_an_error_not_a_crash() {
    let s = Instance::new("chat", 1, &["websocket"]).start();
    let mut c = Ws::connect(&s.addr("websocket"), "/");
    c.send_text(r#"{"type":"say","to_client_id":"all","content":"x"}"#);
    assert_eq!(c.recv_json_type("error")["code"], 4001);
    let l = login(&mut c, "late", json!(5));
    assert!(l["client_id"].is_string());
}

#[test]
fn chat_over_text_protocol() {
    let s = Instance::new("chat", 1, &["text"]).start();
    let c = TcpStream::connect(s.addr("text")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    w.write_all(b"{\"type\":\"login\",\"client_name\":\"t\",\"room_id\":9}\n{\"type\":\"say\",\"to_client_id\":\"all\",\"content\":\"over text\"}\n")
        .unwrap();
    let mut types = Vec::new();
    for _ in 0..2 {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        types.push(v["type"].as_str().unwrap().to_owned());
        if v["type"] == "say" {
            assert_eq!(v["content"], "over text");
        }
    }
    assert_eq!(types, ["login", "say"]);
}

#[test]
fn a_room_hears_logout_for_members_of_a_killed_worker() {
    // Members on a worker killed with -9 get no on_close; the surviving worker tells its own
    // members of the room when its bus link to the dead worker ends.
    let s = Instance::new("chat", 2, &["websocket"]).start();
    let pids = s.worker_pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let mut members: Vec<(String, i32, Ws)> = Vec::new();
    for i in 0..16 {
        let mut ws = Ws::connect(&s.addr("websocket"), "/");
        let me = login(&mut ws, &format!("m{i}"), json!(7));
        let pid = common::socket_owner(&ws.sock, s.port("websocket"), &pids).expect("owner");
        members.push((me["client_id"].as_str().unwrap().to_owned(), pid, ws));
        let on_first = members.iter().filter(|m| m.1 == pids[0]).count();
        if members.len() >= 6 && on_first > 0 && on_first < members.len() {
            break;
        }
    }
    let victim = members[0].1;
    assert!(members.iter().any(|m| m.1 != victim), "all on one worker");
    let mut dead: Vec<String> = members
        .iter()
        .filter(|m| m.1 == victim)
        .map(|m| m.0.clone())
        .collect();
    dead.sort();
    // Drain the login announcements.
    for (_, _, ws) in members.iter_mut() {
        ws.sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while ws.recv_text().is_some() {}
    }
    signal(victim, libc::SIGKILL);
    for (id, pid, ws) in members.iter_mut() {
        if *pid == victim {
            continue;
        }
        // Read until as many logouts as members died (or a 10 s read timeout), then listen
        // for a while longer: a duplicate, or a logout of a survivor, would arrive with them.
        let mut gone = Vec::new();
        let logouts = |ws: &mut Ws, gone: &mut Vec<String>, until: usize| {
            while gone.len() < until {
                let Some(t) = ws.recv_text() else { break };
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "logout" {
                    gone.push(v["from_client_id"].as_str().unwrap().to_owned());
                }
            }
        };
        ws.sock
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        logouts(ws, &mut gone, dead.len());
        ws.sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        logouts(ws, &mut gone, usize::MAX);
        gone.sort();
        assert_eq!(gone, dead, "logouts seen by {id}");
    }
}
