//! A minimal WebDriver client (the W3C protocol: JSON over HTTP) driving headless Chromium through
//! `chromedriver`, for the console's browser test. Blocking: plain `std` TCP, one connection per
//! command, the HTTP parsing of the API tests (`http::parse`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Longest wait for one WebDriver command (a cold Chromium start on a loaded 2-core machine).
const COMMAND: Duration = Duration::from_secs(120);

/// Longest wait for chromedriver to say it listens.
const DRIVER_START: Duration = Duration::from_secs(60);

/// Where a program is: `$env_var` if set, else the first of `names` on `PATH`.
pub(crate) fn find_program(env_var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|candidate| candidate.is_file())
}

/// A running chromedriver, stopped (killed, by its own pid) when dropped.
pub(crate) struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts `chromedriver` on a port of a range derived from this process's id, trying the
    /// next one while the port is taken. chromedriver cannot pick a free port itself (no
    /// `--port=0`), and binding one here to release it would race; so a start counts only once
    /// chromedriver prints that it started.
    pub(crate) fn start(program: &Path) -> Driver {
        let base = 20_000 + (std::process::id() % 2_000) as u16 * 10;
        let mut failures = Vec::new();
        for port in (base..base + 400).step_by(7) {
            let mut child = Command::new(program)
                .arg(format!("--port={port}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let started = line.contains("started successfully");
                    let failed = line.contains("not available") || line.contains("Exiting");
                    if started || failed {
                        let _ = tx.send(started);
                    }
                }
                let _ = tx.send(false);
            });
            match rx.recv_timeout(DRIVER_START) {
                Ok(true) => return Driver { child, port },
                Ok(false) => failures.push(port),
                Err(_) => {
                    let _ = child.kill();
                    panic!("chromedriver did not start within {DRIVER_START:?} on port {port}");
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chromedriver could not listen on any of the ports {failures:?}");
    }

    /// Sends a command; returns its `value`, or panics with WebDriver's error.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Sends a command; its `value`, or what went wrong.
    fn try_command(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("cannot reach chromedriver: {e}"))?;
        stream
            .set_read_timeout(Some(COMMAND))
            .map_err(|e| e.to_string())?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .map_err(|e| format!("cannot send: {e}"))?;
        // chromedriver keeps the connection open whatever the request says: read the head, then
        // as many bytes as it announces.
        let raw =
            read_answer(&mut stream).map_err(|e| format!("no answer from chromedriver: {e}"))?;
        let answer = crate::http::parse(&raw);
        let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if answer.status == 200 {
            Ok(value["value"].clone())
        } else {
            Err(format!("{} {value}", answer.status))
        }
    }
}

/// One HTTP answer with a `Content-Length`, read from `stream`.
fn read_answer(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(length) = length {
                if raw.len() >= end + 4 + length {
                    raw.truncate(end + 4 + length);
                    return Ok(raw);
                }
            }
        }
        // A signal (a child process of another test exiting) can interrupt the read: retry it.
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session (a headless Chromium), ended when dropped.
pub(crate) struct Session<'d> {
    driver: &'d Driver,
    id: String,
    /// Chromium's profile directory, removed after the session.
    _profile: tempfile::TempDir,
}

/// A page element.
#[derive(Debug, Clone)]
pub(crate) struct Element(String);

impl<'d> Session<'d> {
    /// A headless Chromium of `binary`, with a window of `width` × `height`.
    pub(crate) fn new(driver: &'d Driver, binary: &Path, width: u32, height: u32) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": binary.display().to_string(), "args": args},
            "timeouts": {"script": 60_000, "pageLoad": 120_000}
        }}});
        let value = driver.command("POST", "/session", Some(&capabilities));
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_string();
        Session {
            driver,
            id,
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver.command(method, &path, body.as_ref())
    }

    /// Loads `url`.
    pub(crate) fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub(crate) fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The elements matching a CSS selector (none: empty).
    pub(crate) fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits for an element matching `css` to exist.
    pub(crate) fn wait_for(&self, css: &str) -> Element {
        until(&format!("an element {css}"), || {
            self.find_all(css).into_iter().next()
        })
    }

    /// Clicks an element.
    pub(crate) fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Replaces an input's text.
    pub(crate) fn fill(&self, e: &Element, text: &str) {
        self.cmd("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
        if !text.is_empty() {
            self.cmd(
                "POST",
                &format!("/element/{}/value", e.0),
                Some(json!({ "text": text })),
            );
        }
    }

    /// An element's visible text.
    pub(crate) fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The text of the first element matching `css` ("" when there is none).
    pub(crate) fn text_of(&self, css: &str) -> String {
        self.find_all(css)
            .first()
            .map(|e| self.text(e))
            .unwrap_or_default()
    }

    /// Waits until the text of `css` satisfies `ok`, and returns it.
    pub(crate) fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        until(&format!("{css} to show {what}"), || {
            let t = self.text_of(css);
            ok(&t).then_some(t)
        })
    }

    /// Saves a PNG screenshot of the page's content (the `body` element, so no empty window
    /// below it) to `path`.
    pub(crate) fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let body = self.wait_for("body");
        let shot = self.cmd("GET", &format!("/element/{}/screenshot", body.0), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.id);
        // Best effort (never a panic in a drop): the driver is killed right after anyway.
        let _ = self.driver.try_command("DELETE", &path, None);
    }
}

/// How long [`until`] waits: generous, for a loaded 2-core CI machine.
const WAIT: Duration = Duration::from_secs(120);

/// Polls `f` until it returns `Some` (every 100 ms), for up to [`WAIT`].
pub(crate) fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {what} in vain"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
