//! Starting the real proxy in-process on a loopback port, with a private state file, and
//! stopping it (as SIGTERM would) when the handle is dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use m3u_proxy::config::Config;

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    pub state_file: PathBuf,
    stop: Option<async_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

static NEXT_STATE: AtomicUsize = AtomicUsize::new(0);

/// A fresh state-file path for one test.
pub fn fresh_state_file() -> PathBuf {
    let n = NEXT_STATE.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("m3u-proxy-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("state.json")
}

/// Test defaults: loopback, short timeouts so failures show quickly.
pub fn test_config() -> Config {
    let mut config = Config::defaults();
    config.host = "127.0.0.1".parse().unwrap();
    config.connect_timeout = Duration::from_secs(2);
    config.read_timeout = Duration::from_secs(5);
    config.live_chunk_timeout = Duration::from_secs(2);
    config.state_file = fresh_state_file();
    config
}

impl Proxy {
    /// Starts with the test defaults changed by `configure`.
    pub fn start(configure: impl FnOnce(&mut Config)) -> Proxy {
        let mut config = test_config();
        configure(&mut config);
        Proxy::start_with(config)
    }

    pub fn start_with(config: Config) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let state_file = config.state_file.clone();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            let shutdown = async move {
                let _ = stopped.recv().await;
            };
            m3u_proxy::run(config, listener, shutdown).expect("proxy runs");
        });
        Proxy {
            addr,
            state_file,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the proxy and waits until it has finished shutting down.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send_blocking(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shut_down();
    }
}
