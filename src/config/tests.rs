//! Unit tests of the config.

use super::*;

#[test]
fn defaults_without_file() {
    let c = Config::load(None, &Overrides::default()).unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.limits.max_package_size, 10 * 1024 * 1024);
    assert_eq!(c.stop_timeout, Duration::from_secs(2));
}

#[test]
fn listen_urls() {
    let l: ListenSpec = "websocket://127.0.0.1:9000".parse().unwrap();
    assert_eq!(l.scheme, Scheme::Websocket);
    assert_eq!(l.to_string(), "websocket://127.0.0.1:9000");
    let l: ListenSpec = "text://[::1]:9001".parse().unwrap();
    assert_eq!(l.scheme, Scheme::Text);
    assert!("ftp://1.2.3.4:5".parse::<ListenSpec>().is_err());
    assert!("text://nohost".parse::<ListenSpec>().is_err());
}

#[test]
fn tls_listeners_strings_and_tables() {
    for (url, word) in [
        ("wss://127.0.0.1:1", "wss"),
        ("https://127.0.0.1:1", "https"),
        ("text+tls://127.0.0.1:1", "text+tls"),
        ("api+tls://127.0.0.1:1", "api+tls"),
    ] {
        let l: ListenSpec = url.parse().unwrap();
        assert!(l.tls && l.certs.is_none());
        assert_eq!(l.scheme_word(), word);
        assert_eq!(l.to_string(), url);
    }
    let parse = |text: &str| -> Result<Config, ConfigError> {
        let c: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse("t".into(), e.to_string()))?;
        c.validate()?;
        Ok(c)
    };
    let c = parse(
        r#"listen = ["text://127.0.0.1:1", { url = "wss://127.0.0.1:2", cert = "c.pem", key = "k.pem", sni = [{ names = ["b.test"], cert = "b.pem", key = "b.key" }] }]"#,
    )
    .unwrap();
    let certs = c.listen[1].certs.as_ref().unwrap();
    assert_eq!(certs.cert, PathBuf::from("c.pem"));
    assert_eq!(certs.sni[0].names, ["b.test"]);
    let c =
        parse("[[listen]]\nurl = \"https://127.0.0.1:3\"\ncert = \"c\"\nkey = \"k\"\n").unwrap();
    assert!(c.listen[0].certs.is_some());
    // A TLS listener needs its certificate; a plain one takes none; cert and key go together.
    for bad in [
        r#"listen = ["wss://127.0.0.1:2"]"#,
        r#"listen = [{ url = "websocket://127.0.0.1:2", cert = "c", key = "k" }]"#,
        r#"listen = [{ url = "wss://127.0.0.1:2", cert = "c" }]"#,
        r#"listen = [{ url = "wss://127.0.0.1:2", cert = "c", key = "k", sni = [{ names = [], cert = "c", key = "k" }] }]"#,
        r#"listen = [{ url = "wss://127.0.0.1:2", cert = "c", key = "k", certificate = "x" }]"#,
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn listen_override_keeps_the_file_entry_options() {
    let dir = std::env::temp_dir().join(format!("kefu-cfg-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("kefu.toml");
    std::fs::write(
        &p,
        r#"listen = [{ url = "wss://127.0.0.1:2", cert = "c", key = "k" }]"#,
    )
    .unwrap();
    let ov = Overrides {
        listen: vec!["wss://127.0.0.1:2".into(), "text://127.0.0.1:3".into()],
        ..Overrides::default()
    };
    let c = Config::load(Some(&p), &ov).unwrap();
    assert_eq!(c.listen.len(), 2);
    assert!(c.listen[0].certs.is_some());
    let ov = Overrides {
        listen: vec!["wss://127.0.0.1:4".into()],
        ..Overrides::default()
    };
    assert!(Config::load(Some(&p), &ov).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_and_overrides() {
    let dir = std::env::temp_dir().join(format!("kefu-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("kefu.toml");
    std::fs::write(
        &p,
        "app = \"chat\"\nworkers = 3\nlisten = [\"text://127.0.0.1:1\"]\nstop_timeout = 0.5\n[limits]\nmax_send_buffer = 4096\n",
    )
    .unwrap();
    let ov = Overrides {
        workers: Some(2),
        ..Default::default()
    };
    let c = Config::load(Some(&p), &ov).unwrap();
    assert_eq!(c.app, "chat");
    assert_eq!(c.workers, 2);
    assert_eq!(c.stop_timeout, Duration::from_millis(500));
    assert_eq!(c.limits.max_send_buffer, 4096);
    std::fs::write(
        &p,
        "listen = [\"websocket://127.0.0.1:1\", { url = \"http://127.0.0.1:2\", compression = false }, { url = \"text://127.0.0.1:3\", compression = true }]\n[websocket]\ncompression_threshold = 1000\n",
    )
    .unwrap();
    let c = Config::load(Some(&p), &ov).unwrap();
    let on: Vec<bool> = c
        .listen
        .iter()
        .map(|l| l.compresses(&c.websocket))
        .collect();
    // The text protocol has no compression whatever its entry says.
    assert_eq!(on, [true, false, false]);
    assert_eq!(c.listen[1].to_string(), "http://127.0.0.1:2");
    assert_eq!(c.websocket.compression_threshold, 1000);
    std::fs::write(
        &p,
        "listen = [{ url = \"websocket://127.0.0.1:1\", gzip = 1 }]\n",
    )
    .unwrap();
    assert!(Config::load(Some(&p), &ov).is_err());
    std::fs::write(&p, "[websocket]\ncompression_level = 10\n").unwrap();
    assert!(Config::load(Some(&p), &ov).is_err());
    std::fs::write(&p, "bogus_key = 1\n").unwrap();
    assert!(matches!(
        Config::load(Some(&p), &ov),
        Err(ConfigError::Parse(..))
    ));
}

#[test]
fn cluster_section() {
    let dir = std::env::temp_dir().join(format!("kefu-cfg-cl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("kefu.toml");
    let ov = Overrides::default();
    let load = |body: &str| {
        std::fs::write(&p, body).unwrap();
        Config::load(Some(&p), &ov)
    };
    let c = load("[cluster]\nnode = 7\nredis = \"redis://127.0.0.1:6379/\"\n").unwrap();
    let cl = c.cluster.unwrap();
    assert_eq!(
        (
            cl.node,
            cl.lease_ms,
            cl.prefix.as_str(),
            cl.publish_window_us
        ),
        (7, 3000, "kefu", 2500)
    );
    let c = load("[cluster]\nnode = 7\nredis = \"redis://h:1/\"\npublish_window_us = 0\n").unwrap();
    assert_eq!(c.cluster.unwrap().publish_window_us, 0);
    assert!(Config::load(None, &ov).unwrap().cluster.is_none());
    for bad in [
        "[cluster]\nnode = 0\nredis = \"redis://h:1/\"\n",
        "[cluster]\nnode = 256\nredis = \"redis://h:1/\"\n",
        "[cluster]\nnode = 1\nredis = \"http://h:1/\"\n",
        "[cluster]\nnode = 1\nredis = \"redis://h:1/\"\nlease_ms = 10\n",
        "[cluster]\nnode = 1\nredis = \"redis://h:1/\"\nprefix = \"a b\"\n",
        "[cluster]\nnode = 1\n",
        "[cluster]\nnode = 1\nredis = \"redis://h:1/\"\npublish_window_us = 10001\n",
        "[cluster]\nnode = 1\nredis = \"redis://h:1/\"\npublish_window_us = -1\n",
    ] {
        assert!(load(bad).is_err(), "{bad}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
