//! A plain HTTP GET on loopback: enough to read a relay's `/metrics` and `/healthz`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The most of an answer that is read.
const MAX_ANSWER: u64 = 16 << 20;

/// The body of `GET path` from `addr` (HTTP/1.0: the answer ends when the connection
/// does); `None` when nothing answers within seconds or the answer cannot be read.
pub fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.take(MAX_ANSWER).read_to_string(&mut answer).ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some(body.to_owned())
}

/// The value of the series `name` (with its labels, e.g. `clonewire_held_bytes{kind="history"}`,
/// or a bare name) in a Prometheus text exposition.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        (series == name).then(|| value.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    #[test]
    fn the_body_of_the_asked_path_comes_back() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            // The whole request is read first: closing a socket with unread data
            // resets the connection.
            let request: Vec<String> = BufReader::new(&stream)
                .lines()
                .map_while(Result::ok)
                .take_while(|line| !line.is_empty())
                .collect();
            let body = format!("asked {}", request.first().map_or("", String::as_str));
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        });
        assert_eq!(
            get(addr, "/metrics").as_deref(),
            Some("asked GET /metrics HTTP/1.0")
        );
        server.join().expect("server");
    }

    #[test]
    fn a_series_is_found_by_its_whole_name() {
        let text = "# HELP x\nclonewire_held_bytes{kind=\"history\"} 12\nclonewire_held_bytes{kind=\"outboxes\"} 7\nclonewire_clients 3\n";
        assert_eq!(
            metric_value(text, "clonewire_held_bytes{kind=\"outboxes\"}"),
            Some(7.0)
        );
        assert_eq!(metric_value(text, "clonewire_clients"), Some(3.0));
        assert_eq!(metric_value(text, "clonewire_client"), None);
    }
}
