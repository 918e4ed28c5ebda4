//! The admin CLI against the real binary: start -d / status / second start / stop, worker
//! respawn, zero-downtime reload, graceful stop, master death, stale pid file, port in use.

mod common;

use common::{alive, run_in, signal, wait_until, Instance, SEC};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn start_status_refuse_second_start_and_stop() {
    let k = Instance::echo(2);
    let out = k.start_detached();
    assert!(out.ok(), "start failed: {out:?}\n{}", k.log());
    assert_eq!(out.stdout.matches("[OK]").count(), 2, "{}", out.stdout);
    assert!(out
        .stdout
        .contains(&format!("text://127.0.0.1:{}", k.port("text"))));
    assert!(out
        .stdout
        .contains("Start success. Input \"kefu stop\" to stop."));
    let master = k.master_pid().expect("pid file");
    assert!(alive(master));

    // Ready means listening: connect right away and get an echo.
    let mut c = TcpStream::connect(("127.0.0.1", k.port("text"))).expect("connect");
    c.write_all(b"ping\n").unwrap();
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line).unwrap();
    assert_eq!(line, "ping\n");
    drop(c);

    let text = k.run(&["status"], 10 * SEC);
    assert!(text.ok(), "{text:?}");
    assert!(text.stdout.contains("GLOBAL STATUS"));
    assert!(text.stdout.contains("2 workers"));
    assert!(text.stdout.contains("[Summary]"));
    let s = k.status().expect("status --json");
    assert_eq!(s["master_pid"].as_i64(), Some(master as i64));
    let pids = k.worker_pids();
    assert_eq!(pids.len(), 2, "{s}");
    for p in &pids {
        assert!(text.stdout.contains(&format!("{p}\t")), "{}", text.stdout);
        assert!(alive(*p));
    }

    let again = k.start_detached();
    assert_ne!(again.code, 0);
    assert!(
        again
            .stderr
            .contains(&format!("kefu is already running, pid {master}")),
        "{again:?}"
    );

    let conns = k.run(&["connections"], 10 * SEC);
    assert!(conns.ok() && conns.stdout.contains("WORKERMAN CONNECTION STATUS"));

    let stop = k.run(&["stop"], 10 * SEC);
    assert!(stop.ok(), "{stop:?}");
    assert!(stop.stdout.contains("kefu stopped"));
    assert!(!k.pid_file().exists());
    assert!(!alive(master));
    for p in pids {
        assert!(
            wait_until(5 * SEC, || !alive(p)),
            "worker {p} survived the stop"
        );
    }
    let st = k.run(&["status"], 10 * SEC);
    assert_ne!(st.code, 0);
    assert!(st.stderr.contains("not run"), "{st:?}");
}

#[test]
fn killed_worker_is_respawned() {
    let k = Instance::echo(2);
    assert!(k.start_detached().ok(), "{}", k.log());
    let before = k.worker_pids();
    assert_eq!(before.len(), 2);
    signal(before[0], libc::SIGKILL);
    let respawned = wait_until(10 * SEC, || {
        let now = k.worker_pids();
        now.len() == 2 && !now.contains(&before[0]) && now.contains(&before[1])
    });
    assert!(
        respawned,
        "no new worker: {:?}\n{}",
        k.worker_pids(),
        k.log()
    );
    let s = k.status().unwrap();
    let killed = s["exits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["status"] == 9 && e["count"] == 1);
    assert!(killed, "exit table: {}", s["exits"]);
    assert!(k.log().contains(&format!(
        "worker[echo:{}] exit with status 9 (signal SIGKILL)",
        before[0]
    )));
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn reload_replaces_every_worker_while_accepting() {
    let k = Instance::echo(2);
    assert!(k.start_detached().ok(), "{}", k.log());
    let before = k.worker_pids();
    assert_eq!(before.len(), 2);

    // A client loop connects continuously during the reload: a refused connect would mean a
    // moment with no listener.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let port = k.port("text");
    let (s2, o2, r2) = (stop.clone(), ok.clone(), refused.clone());
    let client = std::thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(_) => o2.fetch_add(1, Ordering::SeqCst),
                Err(_) => r2.fetch_add(1, Ordering::SeqCst),
            };
            // Pacing, not synchronisation: a connect every ~2 ms covers the reload densely
            // without flooding the accept queue.
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let out = k.run(&["reload"], 30 * SEC);
    let out_g = k.run(&["reload", "-g"], 30 * SEC);
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert!(out.ok(), "{out:?}\n{}", k.log());
    assert!(out.stdout.contains("kefu reloaded, workers:"), "{out:?}");
    assert!(out_g.ok(), "{out_g:?}\n{}", k.log());
    let after = k.worker_pids();
    assert_eq!(after.len(), 2, "{after:?}");
    for p in &after {
        assert!(!before.contains(p), "worker {p} was not replaced");
        assert!(out_g.stdout.contains(&p.to_string()), "{out_g:?}");
    }
    for p in &before {
        assert!(
            wait_until(5 * SEC, || !alive(*p)),
            "old worker {p} still alive"
        );
    }
    assert!(ok.load(Ordering::SeqCst) > 0);
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "connections refused during reload"
    );
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn graceful_stop_waits_for_connections() {
    let k = Instance::echo(1);
    assert!(k.start_detached().ok(), "{}", k.log());
    let master = k.master_pid().unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", k.port("text"))).unwrap();
    c.write_all(b"hello\n").unwrap();
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line).unwrap();

    let dir = k.dir.clone();
    let stopper = std::thread::spawn(move || {
        let args: Vec<String> = ["stop", "-g", "--pid-file", "k.pid"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        run_in(&dir, &args, 30 * SEC)
    });
    let stopping = wait_until(10 * SEC, || {
        k.status().is_some_and(|s| s["phase"] == "stopping")
    });
    assert!(stopping, "{}", k.log());
    assert!(alive(master), "master left before the connection closed");
    drop(c);
    let out = stopper.join().unwrap();
    assert!(out.ok(), "{out:?}\n{}", k.log());
    assert!(out.stdout.contains("kefu stopped"));
    assert!(!alive(master));
    assert!(!k.pid_file().exists());
}

#[test]
fn master_kill9_takes_workers_down_and_leaves_a_stale_pid_file() {
    let k = Instance::echo(2);
    assert!(k.start_detached().ok(), "{}", k.log());
    let master = k.master_pid().unwrap();
    let workers = k.worker_pids();
    assert_eq!(workers.len(), 2);
    signal(master, libc::SIGKILL);
    for p in &workers {
        assert!(wait_until(5 * SEC, || !alive(*p)), "orphan worker {p}");
    }
    assert!(wait_until(5 * SEC, || !alive(master)));
    // The pid file is stale (lock free): status says so, start replaces it.
    assert!(k.pid_file().exists());
    let st = k.run(&["status"], 10 * SEC);
    assert!(st.stderr.contains("not run"), "{st:?}");
    let out = k.start_detached();
    assert!(
        out.ok(),
        "restart over a stale pid file: {out:?}\n{}",
        k.log()
    );
    let new_master = k.master_pid().unwrap();
    assert_ne!(new_master, master);
    assert_eq!(k.worker_pids().len(), 2);
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn garbage_pid_file_is_replaced() {
    let k = Instance::echo(1);
    std::fs::write(k.pid_file(), "999999\n").unwrap();
    assert!(k.start_detached().ok(), "{}", k.log());
    assert_ne!(k.master_pid(), Some(999_999));
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn port_in_use_fails_with_the_listener_named() {
    let k = Instance::echo(1);
    let hog = std::net::TcpListener::bind(("127.0.0.1", k.port("text"))).unwrap();
    let out = k.start_detached();
    assert_ne!(out.code, 0, "{out:?}");
    let want = format!("port in use: text://127.0.0.1:{}", k.port("text"));
    assert!(out.stderr.contains(&want), "{out:?}");
    drop(hog);
    assert!(!k.pid_file().exists());
    // The failed instance left nothing locked: a start now works.
    assert!(k.start_detached().ok(), "{}", k.log());
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn bad_config_fails_start() {
    let k = Instance::echo(1);
    std::fs::write(k.dir.join("bad.toml"), "workers = \"many\"\n").unwrap();
    let out = k.run(&["start", "-d", "-c", "bad.toml"], 10 * SEC);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("bad config"), "{out:?}");
    let out = k.run(&["start", "--listen", "ftp://x"], 10 * SEC);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("bad listen url"), "{out:?}");
}

#[test]
fn foreground_start_stops_on_sigint() {
    // The launcher returns once the banner is out.
    let mut k = Instance::echo(1).start();
    assert!(
        k.stdout().contains("Press Ctrl+C to stop. Start success."),
        "{}",
        k.stdout()
    );
    let workers = k.worker_pids();
    assert_eq!(workers.len(), 1);
    k.signal_master(libc::SIGINT);
    let st = k
        .wait_exit(10 * SEC)
        .expect("master still running after SIGINT");
    assert_eq!(st.code(), Some(0));
    assert!(!k.pid_file().exists());
    assert!(wait_until(5 * SEC, || !alive(workers[0])));
}

#[test]
fn stuck_worker_shows_busy_and_is_killed_on_stop() {
    let k = Instance::echo(2);
    assert!(k.start_detached().ok(), "{}", k.log());
    let pids = k.worker_pids();
    // SIGSTOP: the worker neither answers the status query nor obeys Stop.
    signal(pids[0], libc::SIGSTOP);
    let text = k.run(&["status"], 10 * SEC);
    let row = text
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{}\t", pids[0])))
        .unwrap_or_default()
        .to_string();
    assert!(
        row.starts_with(&format!("{}\tN/A", pids[0])),
        "{}",
        text.stdout
    );
    assert!(row.ends_with("[busy]"), "{row}");
    let s = k.status().unwrap();
    assert!(s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["pid"] == pids[0] && w["state"] == "busy"));
    let out = k.run(&["stop"], 15 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    assert!(
        k.log()
            .contains("is stuck: still alive after stop_timeout; SIGKILL"),
        "{}",
        k.log()
    );
    assert!(!alive(pids[0]));
}

#[test]
fn reload_with_broken_config_keeps_old_workers() {
    let k = Instance::echo(2);
    let conf = format!(
        "workers = 2\nlisten = [\"text://127.0.0.1:{}\"]\nlog_file = \"k.log\"\n",
        k.port("text")
    );
    std::fs::write(k.dir.join("k.toml"), &conf).unwrap();
    let out = k.run(&["start", "-d", "-c", "k.toml"], 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    let before = k.worker_pids();
    assert_eq!(before.len(), 2);

    std::fs::write(k.dir.join("k.toml"), "workers = [\n").unwrap();
    let bad = k.run(&["reload"], 30 * SEC);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.stderr.contains("reload failed"), "{bad:?}");
    assert!(bad.stderr.contains("bad config"), "{bad:?}");
    let mut still = k.worker_pids();
    still.sort();
    let mut b = before.clone();
    b.sort();
    assert_eq!(still, b, "old workers must keep serving");

    // Fixed file: the next reload goes through and the new workers see the new file.
    std::fs::write(k.dir.join("k.toml"), &conf).unwrap();
    let good = k.run(&["reload", "-c", "k.toml"], 30 * SEC);
    assert!(good.ok(), "{good:?}\n{}", k.log());
    assert!(k.worker_pids().iter().all(|p| !before.contains(p)));
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn restart_gives_a_new_master() {
    let k = Instance::echo(1);
    assert!(k.start_detached().ok(), "{}", k.log());
    let first = k.master_pid().unwrap();
    let mut a = vec!["restart".to_string(), "-d".to_string()];
    a.extend(k.start_args());
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = k.run(&refs, 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    assert!(out.stdout.contains("kefu stopped") && out.stdout.contains("Start success"));
    let second = k.master_pid().unwrap();
    assert_ne!(first, second);
    assert!(!alive(first));
    assert_eq!(k.worker_pids().len(), 1);
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn second_sigint_escalates_to_sigkill() {
    let k = Instance::echo(1);
    // A long stop_timeout: only the escalation can end the stop quickly.
    let conf = format!(
        "workers = 1\nlisten = [\"text://127.0.0.1:{}\"]\nlog_file = \"k.log\"\nstop_timeout = 60\n",
        k.port("text")
    );
    std::fs::write(k.dir.join("k.toml"), conf).unwrap();
    assert!(
        k.run(&["start", "-d", "-c", "k.toml"], 30 * SEC).ok(),
        "{}",
        k.log()
    );
    let master = k.master_pid().unwrap();
    let worker = k.worker_pids()[0];
    signal(worker, libc::SIGSTOP);
    signal(master, libc::SIGINT);
    assert!(wait_until(10 * SEC, || k
        .status()
        .is_some_and(|s| s["phase"] == "stopping")));
    assert!(alive(master), "the stuck worker should hold the stop");
    signal(master, libc::SIGINT);
    assert!(wait_until(10 * SEC, || !alive(master)), "{}", k.log());
    assert!(!alive(worker));
    assert!(k
        .log()
        .contains("second stop request: killing all workers now"));
    assert!(!k.pid_file().exists());
}
