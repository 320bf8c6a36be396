//! `httpd ADDR`: an HTTP/1.1 server on Rust std's TcpListener, a thread per
//! connection, keep-alive; answers every request with a greeting.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        std::io::copy(&mut (&mut r).take(length as u64), &mut std::io::sink())?;
        let body = "hello from rust std\n";
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            body
        )?;
    }
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "0.0.0.0:8080".into());
    let l = TcpListener::bind(&addr).expect("bind");
    for s in l.incoming() {
        match s {
            Ok(s) => {
                std::thread::spawn(move || serve(s));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}
