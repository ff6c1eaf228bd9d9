//! Typed configuration: every setting has one name used three ways (flag `--client-timeout`,
//! environment `CLIENT_TIMEOUT`, UCI `client_timeout`). Sources are layered defaults, then
//! environment, then flags, and validated once into [`Config`]. Parsing of raw text lives
//! in `settings`; this file owns the typed result and its invariants.

mod settings;

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use settings::{help_text, SETTINGS};

/// Everything the proxy needs to run, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// Path prefix such as `/iptv` (no trailing slash), or empty.
    pub root_path: String,
    /// Management routes need this token when set; never logged.
    pub api_token: Option<String>,
    pub log_level: log::LevelFilter,
    /// An HLS client with no request for this long has left.
    pub client_timeout: Duration,
    /// A stream with no clients for this long is removed.
    pub stream_timeout: Duration,
    pub default_user_agent: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// A live stream with no bytes for this long counts as stalled.
    pub live_chunk_timeout: Duration,
    pub max_connections: usize,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Fixed base (`https://tv.example/iptv`) for URLs written into playlists.
    pub public_base_url: Option<url::Url>,
    pub state_file: PathBuf,
    pub webhook_workers: usize,
    /// How many times the whole source list is tried before a stream gives up.
    pub failover_cycles: u32,
    /// How long a client may take to send its request head.
    pub header_timeout: Duration,
    /// A client that accepts no bytes for this long has gone away.
    pub client_write_timeout: Duration,
    /// How often a VOD body cut short is resumed with `Range` before it counts as failed.
    pub vod_resume_attempts: u32,
}

impl Config {
    /// The address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The defaults alone, as a test or embedding program starts from.
    pub fn defaults() -> Config {
        let no_env = |_: &str| None;
        match Config::from_sources(no_env, Vec::<OsString>::new()) {
            Ok(Command::Run(config)) => *config,
            _ => unreachable!("the built-in defaults are valid"),
        }
    }

    /// Reads the environment through `env` and then the flags in `args` (without the
    /// program name). Flags beat the environment.
    pub fn from_sources(
        env: impl Fn(&str) -> Option<String>,
        args: impl IntoIterator<Item = OsString>,
    ) -> Result<Command, ConfigError> {
        let mut raw = settings::RawSettings::defaults();
        raw.apply_env(env);
        if let Some(command) = raw.apply_args(args)? {
            return Ok(command);
        }
        Ok(Command::Run(Box::new(raw.validate()?)))
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// A setting that could not be used, with the source it came from.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    Invalid {
        setting: String,
        value: String,
        expected: &'static str,
    },
    UnknownFlag(String),
    MissingValue(String),
    Malformed(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid {
                setting,
                value,
                expected,
            } => write!(f, "invalid {setting} {value:?}: expected {expected}"),
            ConfigError::UnknownFlag(flag) => {
                write!(f, "unknown option {flag}: see --help for the options")
            }
            ConfigError::MissingValue(flag) => write!(f, "option {flag} needs a value"),
            ConfigError::Malformed(detail) => write!(f, "command line: {detail}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// An address range such as `10.0.0.0/8` or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` lies in this range (IPv4-mapped IPv6 peers count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    net[full] & mask == ip[full] & mask
}

#[cfg(test)]
mod tests;
