//! A tiny webhook receiver for trying m3u-proxy's webhooks: listens on 127.0.0.1, prints
//! one line per event and whether its signature verified, and answers 200. One thread,
//! one request per connection; a demonstration, not a server to expose.
//!
//! ```text
//! cargo run --example event_receiver -- --port 9000 --secret s3cret
//! curl -X POST localhost:8085/webhooks -d '{"url": "http://127.0.0.1:9000/", "secret": "s3cret"}'
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use m3u_proxy::webhook::signing;

/// Largest body read; events are far smaller.
const MAX_BODY: usize = 1024 * 1024;

/// How far the signing time may be from our clock, in seconds.
const TOLERANCE_SECS: u64 = 300;

const USAGE: &str = "usage: event_receiver [--port PORT] [--secret SECRET]";

struct Options {
    port: u16,
    secret: Option<String>,
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("event_receiver: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let listener = match TcpListener::bind(("127.0.0.1", options.port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "event_receiver: cannot listen on 127.0.0.1:{}: {err}",
                options.port
            );
            return ExitCode::FAILURE;
        }
    };
    let signed = if options.secret.is_some() {
        "checking signatures"
    } else {
        "unsigned"
    };
    eprintln!(
        "event_receiver: listening on http://127.0.0.1:{} ({signed})",
        options.port
    );

    for stream in listener.incoming().flatten() {
        if let Err(err) = handle(stream, options.secret.as_deref()) {
            eprintln!("event_receiver: bad request: {err}");
        }
    }
    ExitCode::SUCCESS
}

fn parse_args() -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut options = Options {
        port: 9000,
        secret: None,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("port") => options.port = parser.value()?.parse()?,
            Long("secret") => options.secret = Some(parser.value()?.string()?),
            Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(options)
}

/// A request as far as this receiver cares.
struct Request {
    method: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, value)| value.as_str())
    }
}

fn handle(stream: TcpStream, secret: Option<&str>) -> std::io::Result<()> {
    // One thread serves everyone, so a silent client may not hold it for long.
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let request = read_request(&mut BufReader::new(stream))?;

    if request.method != "POST" {
        return reply(
            &mut writer,
            "405 Method Not Allowed",
            "{\"detail\": \"POST only\"}",
        );
    }
    println!("{}", describe(&request, secret));
    reply(&mut writer, "200 OK", "{\"received\": true}")
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Request> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let method = line.split(' ').next().unwrap_or("").to_owned();

    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }

    let mut request = Request {
        method,
        headers,
        body: Vec::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(std::io::Error::other(format!(
            "body of {length} bytes is too large"
        )));
    }
    request.body = vec![0; length];
    reader.read_exact(&mut request.body)?;
    Ok(request)
}

/// One line: event type, stream, sequence, id, attempt, and the signature check.
fn describe(request: &Request, secret: Option<&str>) -> String {
    let event: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let field = |name: &str| match &event[name] {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    format!(
        "{} stream={} sequence={} id={} attempt={} signature={}",
        field("event_type"),
        field("stream_id"),
        field("sequence"),
        field("event_id"),
        request.header("x-delivery-attempt").unwrap_or("-"),
        check_signature(request, secret)
    )
}

fn check_signature(request: &Request, secret: Option<&str>) -> String {
    let Some(secret) = secret else {
        return "not checked (no --secret)".to_owned();
    };
    let timestamp = request.header(signing::TIMESTAMP_HEADER);
    let signature = request.header(signing::SIGNATURE_HEADER);
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return "MISSING".to_owned();
    };

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let checked = signing::verify(secret, timestamp, &request.body, signature)
        .and_then(|()| signing::check_fresh(timestamp, now, TOLERANCE_SECS));
    match checked {
        Ok(()) => "verified".to_owned(),
        Err(err) => format!("FAILED ({err})"),
    }
}

fn reply(writer: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(body.as_bytes())
}
