//! Processes of other roles beside a test [`Server`]: `sluice serve --role ingest|worker` on
//! the server's data directory (so on its configuration file), its database and its object
//! store (the objects directory, or the S3 prefix of a run on S3), with ports of their own,
//! the way nodes of a multi-process deployment share one database and one object store.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{http_get, start_healthy, HttpResponse, Launch, Server};

/// A `sluice serve --role …` process, killed on drop.
pub struct Node {
    child: Child,
    pub http_port: u16,
    pub rtmp_port: u16,
    log_path: PathBuf,
}

impl Node {
    /// Starts `sluice serve --role ROLE` beside `server` (started with `launch`) and waits
    /// until it is running and its health check answers.
    pub fn start(server: &Server, launch: &Launch, role: &str) -> Node {
        let data_dir = server.data_dir.path();
        let log_path = (1..)
            .map(|n| data_dir.join(format!("{role}-{n}.log")))
            .find(|path| !path.exists())
            .expect("a free log file name");
        let spawn = |http_port: u16, rtmp_port: u16| {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("node log file");
            let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
            command
                .args(["serve", "--role", role])
                .env("SLUICE_HTTP", format!("127.0.0.1:{http_port}"))
                .env("SLUICE_RTMP", format!("127.0.0.1:{rtmp_port}"))
                .env("SLUICE_DATA_DIR", data_dir)
                .env("SLUICE_PUBLIC_URL", server.url(""))
                .env("SLUICE_LOG", "info,sluice=debug")
                .env_remove("SLUICE_API_KEY")
                .env_remove("SLUICE_API_SECRET")
                .env_remove("SLUICE_CONFIG")
                .env_remove("DATABASE_URL")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log);
            if launch.config.is_some() {
                command.env("SLUICE_CONFIG", data_dir.join("sluice.toml"));
            }
            if let Some(database) = &launch.database {
                command.env("DATABASE_URL", database.url());
            }
            launch.storage_env(&mut command);
            command.spawn().expect("start a sluice node")
        };
        let (child, http_port, rtmp_port) =
            start_healthy(&format!("the {role} node"), &log_path, spawn);
        Node {
            child,
            http_port,
            rtmp_port,
            log_path,
        }
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http_get(&format!("http://127.0.0.1:{}{path}", self.http_port))
    }

    pub fn rtmp_url(&self, stream_key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream_key}", self.rtmp_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the process with SIGKILL, leaving it no chance to clean up, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The metadata database `server` (started with `launch`) and its nodes share.
pub fn database_url(server: &Server, launch: &Launch) -> String {
    match &launch.database {
        Some(database) => database.url().to_owned(),
        None => format!(
            "sqlite://{}?mode=rwc",
            server.data_dir.path().join("sluice.db").display()
        ),
    }
}
