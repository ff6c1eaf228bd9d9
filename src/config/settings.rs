//! The table of settings and the raw (text) layer: defaults, then environment, then
//! flags, then one validation pass into the typed `Config`. Adding a setting is one
//! row in [`SETTINGS`] and one line in `validate`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::{Command, Config, ConfigError, IpNet};

/// One setting: its name (`client_timeout` → `--client-timeout`, `CLIENT_TIMEOUT`),
/// its default as text, and a line of help.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting the proxy reads, in the order `--help` prints them.
pub const SETTINGS: &[Setting] = &[
    Setting { name: "host", default: "0.0.0.0", help: "address to listen on" },
    Setting { name: "port", default: "8085", help: "port to listen on" },
    Setting { name: "root_path", default: "", help: "path prefix, e.g. /iptv; routes answer with and without it" },
    Setting { name: "api_token", default: "", help: "token for management routes; empty turns authentication off" },
    Setting { name: "log_level", default: "info", help: "error, warning, info, debug or trace" },
    Setting { name: "client_timeout", default: "30", help: "seconds without a request after which an HLS client has left" },
    Setting { name: "stream_timeout", default: "300", help: "seconds a stream with no clients is kept before it is removed" },
    Setting { name: "default_user_agent", default: "VLC/3.0.21 LibVLC/3.0.21", help: "User-Agent sent upstream when a stream sets none" },
    Setting { name: "default_connection_timeout", default: "10", help: "seconds to connect to an upstream" },
    Setting { name: "default_read_timeout", default: "30", help: "seconds to wait for an upstream's response head or body bytes" },
    Setting { name: "live_chunk_timeout_seconds", default: "8", help: "seconds without bytes after which a live stream has stalled" },
    Setting { name: "max_connections", default: "256", help: "open client connections; past this new ones get 503" },
    Setting { name: "trusted_proxies", default: "", help: "comma-separated addresses or ranges whose X-Forwarded-* headers are believed" },
    Setting { name: "public_base_url", default: "", help: "fixed base URL for links written into playlists, e.g. https://tv.example/iptv" },
    Setting { name: "state_file", default: "", help: "where webhooks are saved; default $STATE_DIRECTORY/state.json or ./m3u-proxy-state.json" },
    Setting { name: "webhook_workers", default: "2", help: "threads delivering webhooks" },
    Setting { name: "failover_cycles", default: "2", help: "times the whole source list is tried before a stream gives up" },
    Setting { name: "header_timeout", default: "10", help: "seconds a client may take to send its request head" },
    Setting { name: "client_write_timeout", default: "30", help: "seconds a client may accept no bytes before it is dropped" },
    Setting { name: "vod_resume_attempts", default: "3", help: "times a VOD body cut short is resumed with Range" },
];

/// Values as text, keyed by setting name, each remembering where it came from.
pub struct RawSettings {
    values: HashMap<&'static str, (String, Source)>,
}

#[derive(Clone, Copy)]
enum Source {
    Default,
    Env,
    Flag,
}

impl RawSettings {
    pub fn defaults() -> RawSettings {
        let values = SETTINGS
            .iter()
            .map(|s| (s.name, (s.default.to_owned(), Source::Default)))
            .collect();
        RawSettings { values }
    }

    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        for setting in SETTINGS {
            if let Some(value) = env(&setting.name.to_ascii_uppercase()) {
                self.values.insert(setting.name, (value, Source::Env));
            }
        }
    }

    /// Applies flags; returns a command when the flags ask for help or the version.
    pub fn apply_args(
        &mut self,
        args: impl IntoIterator<Item = OsString>,
    ) -> Result<Option<Command>, ConfigError> {
        use lexopt::Arg;

        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(flag_error)? {
            let long = match arg {
                Arg::Long("help") | Arg::Short('h') => return Ok(Some(Command::Help)),
                Arg::Long("version") | Arg::Short('V') => return Ok(Some(Command::Version)),
                Arg::Long(long) => long.to_owned(),
                Arg::Short(c) => return Err(ConfigError::UnknownFlag(format!("-{c}"))),
                Arg::Value(v) => {
                    let v = v.to_string_lossy().into_owned();
                    return Err(ConfigError::Malformed(format!("unexpected argument {v:?}")));
                }
            };
            let setting = SETTINGS
                .iter()
                .find(|s| s.name == long.replace('-', "_"))
                .ok_or_else(|| ConfigError::UnknownFlag(format!("--{long}")))?;
            let value = parser
                .value()
                .map_err(|_| ConfigError::MissingValue(format!("--{long}")))?;
            let value = value.into_string().map_err(|v| ConfigError::Invalid {
                setting: format!("--{long}"),
                value: v.to_string_lossy().into_owned(),
                expected: "UTF-8 text",
            })?;
            self.values.insert(setting.name, (value, Source::Flag));
        }
        Ok(None)
    }

    fn text(&self, name: &'static str) -> &str {
        self.values.get(name).map(|(v, _)| v.trim()).unwrap_or("")
    }

    fn invalid(&self, name: &'static str, expected: &'static str) -> ConfigError {
        let (value, source) = match self.values.get(name) {
            Some((value, source)) => (value.clone(), *source),
            None => (String::new(), Source::Default),
        };
        let setting = match source {
            Source::Flag => format!("--{}", name.replace('_', "-")),
            Source::Env => name.to_ascii_uppercase(),
            Source::Default => format!("default {name}"),
        };
        ConfigError::Invalid {
            setting,
            value,
            expected,
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        expected: &'static str,
        valid: impl Fn(&T) -> bool,
    ) -> Result<T, ConfigError> {
        self.text(name)
            .parse::<T>()
            .ok()
            .filter(valid)
            .ok_or_else(|| self.invalid(name, expected))
    }

    fn seconds(&self, name: &'static str) -> Result<Duration, ConfigError> {
        let expected = "a number of seconds above 0 (e.g. 30 or 0.5)";
        let secs: f64 = self.parse(name, expected, |s: &f64| *s > 0.0 && *s < 1e9)?;
        Ok(Duration::from_secs_f64(secs))
    }

    pub fn validate(&self) -> Result<Config, ConfigError> {
        Ok(Config {
            host: self.parse("host", "an IP address such as 0.0.0.0 or ::", |_| true)?,
            port: self.parse("port", "a port number from 1 to 65535", |p: &u16| *p > 0)?,
            root_path: self.root_path()?,
            api_token: Some(self.text("api_token").to_owned()).filter(|t| !t.is_empty()),
            log_level: self.log_level()?,
            client_timeout: self.seconds("client_timeout")?,
            stream_timeout: self.seconds("stream_timeout")?,
            default_user_agent: self.user_agent()?,
            connect_timeout: self.seconds("default_connection_timeout")?,
            read_timeout: self.seconds("default_read_timeout")?,
            live_chunk_timeout: self.seconds("live_chunk_timeout_seconds")?,
            max_connections: self.parse("max_connections", "a count from 1", |n| *n > 0)?,
            trusted_proxies: self.trusted_proxies()?,
            public_base_url: self.public_base_url()?,
            state_file: self.state_file()?,
            webhook_workers: self.parse("webhook_workers", "1 to 16", |n| (1..=16).contains(n))?,
            failover_cycles: self
                .parse("failover_cycles", "1 to 100", |n| (1..=100).contains(n))?,
            header_timeout: self.seconds("header_timeout")?,
            client_write_timeout: self.seconds("client_write_timeout")?,
            vod_resume_attempts: self.parse("vod_resume_attempts", "0 to 100", |n| *n <= 100)?,
        })
    }

    fn root_path(&self) -> Result<String, ConfigError> {
        let path = self.text("root_path").trim_end_matches('/');
        if path.is_empty() {
            return Ok(String::new());
        }
        let clean = path.starts_with('/')
            && !path.contains(['?', '#', ' '])
            && !path.split('/').any(|seg| seg == "..");
        if !clean {
            return Err(self.invalid("root_path", "a path such as /iptv"));
        }
        Ok(path.to_owned())
    }

    fn log_level(&self) -> Result<log::LevelFilter, ConfigError> {
        let level = match self.text("log_level").to_ascii_lowercase().as_str() {
            "error" => log::LevelFilter::Error,
            "warning" | "warn" => log::LevelFilter::Warn,
            "info" => log::LevelFilter::Info,
            "debug" => log::LevelFilter::Debug,
            "trace" => log::LevelFilter::Trace,
            _ => return Err(self.invalid("log_level", "error, warning, info, debug or trace")),
        };
        Ok(level)
    }

    fn user_agent(&self) -> Result<String, ConfigError> {
        let agent = self.text("default_user_agent");
        if agent.is_empty() || agent.chars().any(|c| c.is_control()) {
            return Err(self.invalid("default_user_agent", "non-empty text on one line"));
        }
        Ok(agent.to_owned())
    }

    fn trusted_proxies(&self) -> Result<Vec<IpNet>, ConfigError> {
        let expected = "addresses or ranges such as 127.0.0.1,10.0.0.0/8";
        self.text("trusted_proxies")
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| IpNet::parse(part).ok_or_else(|| self.invalid("trusted_proxies", expected)))
            .collect()
    }

    fn public_base_url(&self) -> Result<Option<url::Url>, ConfigError> {
        let text = self.text("public_base_url").trim_end_matches('/');
        if text.is_empty() {
            return Ok(None);
        }
        let expected = "an http or https URL such as https://tv.example/iptv";
        let parsed =
            url::Url::parse(text).map_err(|_| self.invalid("public_base_url", expected))?;
        let usable = matches!(parsed.scheme(), "http" | "https")
            && parsed.host().is_some()
            && parsed.query().is_none();
        if !usable {
            return Err(self.invalid("public_base_url", expected));
        }
        Ok(Some(parsed))
    }

    fn state_file(&self) -> Result<PathBuf, ConfigError> {
        let text = self.text("state_file");
        let path = if !text.is_empty() {
            PathBuf::from(text)
        } else {
            // systemd's StateDirectory= sets this; elsewhere the working directory is ours.
            match std::env::var_os("STATE_DIRECTORY") {
                Some(dir) => PathBuf::from(dir).join("state.json"),
                None => PathBuf::from("m3u-proxy-state.json"),
            }
        };
        if path.is_dir() {
            return Err(self.invalid("state_file", "the path of a file, not a directory"));
        }
        Ok(path)
    }
}

fn flag_error(error: lexopt::Error) -> ConfigError {
    match error {
        lexopt::Error::MissingValue { option } => {
            ConfigError::MissingValue(option.unwrap_or_else(|| "an option".into()))
        }
        lexopt::Error::UnexpectedValue { option, .. } => {
            ConfigError::Malformed(format!("{option} takes its value as --{option} VALUE"))
        }
        other => ConfigError::Malformed(other.to_string()),
    }
}

/// The `--help` text, generated from the table so that it never drifts.
pub fn help_text() -> String {
    let mut text = format!(
        "m3u-proxy {}: IPTV stream proxy (MPEG-TS, VOD, HLS) with failover and webhooks\n\n\
         usage: m3u-proxy [OPTIONS]\n\n\
         Each option can also be set by the environment variable of the same name in\n\
         upper case (--client-timeout 30 or CLIENT_TIMEOUT=30); options beat the environment.\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for setting in SETTINGS {
        let flag = format!("--{}", setting.name.replace('_', "-"));
        let default = match setting.default {
            "" => String::new(),
            d => format!(" [default: {d}]"),
        };
        text.push_str(&format!("  {flag:<30} {}{default}\n", setting.help));
    }
    text.push_str("  -h, --help                     print this help\n");
    text.push_str("  -V, --version                  print the version\n");
    text
}
