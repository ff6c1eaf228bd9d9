use super::*;

fn parse(env: &[(&str, &str)], args: &[&str]) -> Result<Command, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Config::from_sources(lookup, args.iter().map(OsString::from))
}

fn config(env: &[(&str, &str)], args: &[&str]) -> Config {
    match parse(env, args) {
        Ok(Command::Run(config)) => *config,
        other => panic!("expected a config, got {other:?}"),
    }
}

#[test]
fn defaults_serve_on_all_addresses_without_a_token() {
    let config = Config::defaults();
    assert_eq!(config.listen_addr().to_string(), "0.0.0.0:8085");
    assert_eq!(config.api_token, None);
    assert_eq!(config.log_level, log::LevelFilter::Info);
    assert_eq!(config.live_chunk_timeout, Duration::from_secs(8));
}

#[test]
fn flags_beat_the_environment() {
    let config = config(
        &[("PORT", "9000"), ("HOST", "127.0.0.1")],
        &["--port", "9100"],
    );
    assert_eq!(config.port, 9100);
    assert_eq!(config.host.to_string(), "127.0.0.1");
}

#[test]
fn flags_take_values_after_an_equals_sign() {
    assert_eq!(
        config(&[], &["--client-timeout=2.5"]).client_timeout,
        Duration::from_millis(2500)
    );
}

#[test]
fn invalid_values_name_the_setting_as_the_user_wrote_it() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        (&[("PORT", "http")], &[], "PORT"),
        (&[], &["--port", "0"], "--port"),
        (&[("LOG_LEVEL", "loud")], &[], "LOG_LEVEL"),
        (&[], &["--stream-timeout", "-1"], "--stream-timeout"),
        (&[], &["--root-path", "iptv"], "--root-path"),
        (
            &[],
            &["--trusted-proxies", "10.0.0.0/33"],
            "--trusted-proxies",
        ),
        (&[], &["--public-base-url", "ftp://x"], "--public-base-url"),
    ];
    for (env, args, named) in cases {
        match parse(env, args) {
            Err(ConfigError::Invalid { setting, .. }) => assert_eq!(setting, *named),
            other => panic!("{args:?} {env:?}: expected invalid {named}, got {other:?}"),
        }
    }
}

#[test]
fn a_state_file_that_is_a_directory_is_refused_not_moved_aside() {
    let dir = std::env::temp_dir();
    let dir = dir.to_str().unwrap();
    assert!(matches!(
        parse(&[], &["--state-file", dir]),
        Err(ConfigError::Invalid { .. })
    ));
}

#[test]
fn unknown_flags_and_missing_values_are_errors() {
    assert!(matches!(
        parse(&[], &["--colour"]),
        Err(ConfigError::UnknownFlag(_))
    ));
    assert!(matches!(
        parse(&[], &["--port"]),
        Err(ConfigError::MissingValue(_))
    ));
    assert!(matches!(
        parse(&[], &["serve"]),
        Err(ConfigError::Malformed(_))
    ));
}

#[test]
fn help_and_version_are_commands() {
    assert!(matches!(parse(&[], &["--help"]), Ok(Command::Help)));
    assert!(matches!(parse(&[], &["-V"]), Ok(Command::Version)));
    assert!(help_text().contains("--live-chunk-timeout-seconds"));
}

#[test]
fn log_level_accepts_warning_and_any_case() {
    assert_eq!(
        config(&[("LOG_LEVEL", "WARNING")], &[]).log_level,
        log::LevelFilter::Warn
    );
    assert_eq!(
        config(&[("LOG_LEVEL", "Debug")], &[]).log_level,
        log::LevelFilter::Debug
    );
}

#[test]
fn root_path_loses_its_trailing_slash_and_empty_token_means_no_auth() {
    let config = config(&[("ROOT_PATH", "/iptv/"), ("API_TOKEN", "")], &[]);
    assert_eq!(config.root_path, "/iptv");
    assert_eq!(config.api_token, None);
}

#[test]
fn trusted_ranges_match_addresses_inside_them() {
    let net = IpNet::parse("10.1.0.0/16").unwrap();
    assert!(net.contains("10.1.200.3".parse().unwrap()));
    assert!(!net.contains("10.2.0.1".parse().unwrap()));
    assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
    let one = IpNet::parse("::1").unwrap();
    assert!(one.contains("::1".parse().unwrap()));
    assert!(!one.contains("127.0.0.1".parse().unwrap()));
}
