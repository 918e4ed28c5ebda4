//! Debian's nginx in front of kefu nodes, started by the test itself: its own config, pid
//! file, logs and temp paths in a directory of the test's (so it runs as any user and never
//! touches the system's nginx), a plain and a TLS listener on 127.0.0.1, and one worker so
//! round-robin over the upstreams is deterministic.

use super::{free_port, wait_until, SEC};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where Debian puts the server.
pub const NGINX: &str = "/usr/sbin/nginx";

/// Whether the tests can run here; CI installs nginx (see `.ci/run`), so there a missing
/// server fails the test instead of skipping it.
pub fn nginx_available() -> bool {
    if Path::new(NGINX).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{NGINX} is missing: .ci/run installs it"
    );
    eprintln!("\n*** SKIPPED: {NGINX} is not installed (apt-get install nginx) ***\n");
    false
}

/// One nginx proxying WebSocket (and plain HTTP) to `upstreams`, TLS terminated on `tls_port`.
pub struct Nginx {
    /// Plain listener port on 127.0.0.1.
    pub port: u16,
    /// TLS listener port on 127.0.0.1.
    pub tls_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    /// Start nginx in `dir` in front of `upstreams` (`host:port` each) with the TLS
    /// certificate `cert` (chain) and `key`; waits until both listeners accept.
    pub fn start(dir: &Path, upstreams: &[String], cert: &Path, key: &Path) -> Nginx {
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let (port, tls_port) = (free_port(), free_port());
        let d = dir.display();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("    server {u} max_fails=1 fail_timeout=30s;\n"))
            .collect();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n\
               uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n\
               map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
               upstream kefu {{\n{servers}  }}\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 listen 127.0.0.1:{tls_port} ssl;\n\
                 ssl_certificate {cert};\n\
                 ssl_certificate_key {key};\n\
                 location / {{\n\
                   proxy_pass http://kefu;\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Upgrade $http_upgrade;\n\
                   proxy_set_header Connection $connection_upgrade;\n\
                   proxy_set_header Host $host;\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                   proxy_connect_timeout 2s;\n\
                   proxy_read_timeout 1h;\n\
                   proxy_next_upstream error timeout;\n\
                 }}\n\
               }}\n\
             }}\n",
            cert = cert.display(),
            key = key.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let n = Nginx {
            port,
            tls_port,
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        let up = wait_until(10 * SEC, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
        });
        assert!(up, "nginx did not listen; error.log:\n{}", n.error_log());
        n
    }

    /// `127.0.0.1:PORT` of the plain listener.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: a fast stop (a graceful one would wait for the WebSockets to end).
            super::try_signal(c.id() as i32, libc::SIGTERM);
            if !wait_until(10 * SEC, || matches!(c.try_wait(), Ok(Some(_)))) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
