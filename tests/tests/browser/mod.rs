//! Headless Chromium (Debian's `chromium`, or `CHROMIUM`) driven over the DevTools protocol on
//! the pipe `--remote-debugging-pipe` opens (commands on fd 3, replies and events on fd 4, each
//! message JSON ended by a NUL byte): open a page, evaluate script in it, click an element with
//! real mouse events, collect console errors and uncaught exceptions, take a screenshot.
#![allow(dead_code)] // each test binary uses a different part of the driver

use std::io::{BufRead, BufReader, PipeWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

/// How long one command or awaited event may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A headless Chromium with one page; the process is killed when dropped.
pub struct Browser {
    child: Child,
    commands: PipeWriter,
    messages: Receiver<Value>,
    next_id: u64,
    /// The page's session, once a page is open.
    session: Option<String>,
    /// Events received while waiting for something else, oldest first.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// The Chromium binary: `CHROMIUM`, else `chromium` on the path.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("chromium"), PathBuf::from)
}

impl Browser {
    /// Starts Chromium headless with a fresh profile and a `width` × `height` window.
    pub fn launch(width: u32, height: u32) -> anyhow::Result<Self> {
        let binary = chromium();
        let installed = Command::new(&binary).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !installed.is_ok_and(|status| status.success()) {
            bail!(
                "{} cannot be run: install Debian's chromium (`apt-get install chromium`) or set CHROMIUM",
                binary.display()
            );
        }
        let profile = tempfile::tempdir()?;
        let (child_reads, commands) = std::io::pipe()?;
        let (replies, child_writes) = std::io::pipe()?;
        let mut command = Command::new(&binary);
        command
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
            .args(["--no-default-browser-check", "--disable-extensions", "--remote-debugging-pipe"])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (read_fd, write_fd) = (child_reads.as_raw_fd(), child_writes.as_raw_fd());
        // SAFETY: between fork and exec the closure only calls fcntl and dup2, which are
        // async-signal-safe, and touches no memory shared with the parent.
        unsafe {
            command.pre_exec(move || {
                // Lift both ends above 4 first, so that placing one cannot close the other.
                let read_high = libc::fcntl(read_fd, libc::F_DUPFD_CLOEXEC, 10);
                let write_high = libc::fcntl(write_fd, libc::F_DUPFD_CLOEXEC, 10);
                if read_high < 0 || write_high < 0 || libc::dup2(read_high, 3) < 0 || libc::dup2(write_high, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
        // The child holds its ends now; closing ours lets either side see the other go away.
        drop((child_reads, child_writes));
        let (sender, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(replies);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|read| read > 0) {
                message.pop_if(|last| *last == 0);
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && sender.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Ok(Self { child, commands, messages, next_id: 0, session: None, events: Vec::new(), _profile: profile })
    }

    /// Opens `file` in a new page and waits until it has loaded.
    pub fn open(&mut self, file: &Path) -> anyhow::Result<()> {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = target["targetId"].as_str().context("createTarget gave no targetId")?.to_owned();
        let attached = self.call("Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }))?;
        self.session = Some(attached["sessionId"].as_str().context("attachToTarget gave no sessionId")?.to_owned());
        for domain in ["Page", "Runtime", "Log"] {
            self.call(&format!("{domain}.enable"), json!({}))?;
        }
        let url = format!("file://{}", file.canonicalize()?.display());
        let navigated = self.call("Page.navigate", json!({ "url": url }))?;
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            bail!("cannot open {url}: {error}");
        }
        self.wait_for_event("Page.loadEventFired")?;
        Ok(())
    }

    /// The value of a script expression in the page (promises awaited); an exception is an error.
    pub fn evaluate(&mut self, expression: &str) -> anyhow::Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(details) = result.get("exceptionDetails") {
            bail!("`{expression}` threw: {details}");
        }
        Ok(result["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Clicks the middle of the first element matching `selector` with the mouse, as a user does.
    pub fn click(&mut self, selector: &str) -> anyhow::Result<()> {
        let selector_json = serde_json::to_string(selector)?;
        let centre = self.evaluate(&format!(
            "(() => {{ const element = document.querySelector({selector_json}); if (!element) return null; \
             element.scrollIntoView({{ block: 'center' }}); const box = element.getBoundingClientRect(); \
             return [box.x + box.width / 2, box.y + box.height / 2]; }})()"
        ))?;
        let (Some(x), Some(y)) = (centre[0].as_f64(), centre[1].as_f64()) else {
            bail!("nothing on the page matches `{selector}`");
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )?;
        }
        Ok(())
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self) -> anyhow::Result<Vec<u8>> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }))?;
        let data = shot["data"].as_str().context("captureScreenshot gave no data")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }

    /// Console errors, failed loads and uncaught exceptions of the page so far.
    pub fn errors(&mut self) -> Vec<String> {
        while let Ok(message) = self.messages.try_recv() {
            self.events.push(message);
        }
        self.events.iter().filter_map(error_of).collect()
    }

    /// Sends a command (to the page, once one is open) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        self.commands.write_all(&bytes).with_context(|| format!("cannot send {method}: did Chromium exit?"))?;
        let reply = self.receive(|message| message["id"].as_u64() == Some(id), method)?;
        if let Some(error) = reply.get("error") {
            bail!("{method} failed: {error}");
        }
        Ok(reply["result"].clone())
    }

    fn wait_for_event(&mut self, method: &str) -> anyhow::Result<Value> {
        if let Some(index) = self.events.iter().position(|event| event["method"] == method) {
            return Ok(self.events.remove(index));
        }
        self.receive(|message| message["method"] == method, method)
    }

    /// The first message `wanted` accepts; others are kept as events.
    fn receive(&mut self, wanted: impl Fn(&Value) -> bool, what: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) if wanted(&message) => return Ok(message),
                Ok(message) => self.events.push(message),
                Err(RecvTimeoutError::Timeout) => bail!("Chromium did not answer {what} within {TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => bail!("Chromium exited while waiting for {what}"),
            }
        }
    }
}

/// The text of an event that reports an error on the page, if it is one.
fn error_of(event: &Value) -> Option<String> {
    let params = &event["params"];
    match event["method"].as_str()? {
        "Runtime.exceptionThrown" => Some(format!("uncaught exception: {}", params["exceptionDetails"])),
        "Runtime.consoleAPICalled" if matches!(params["type"].as_str(), Some("error" | "assert")) => {
            Some(format!("console.{}: {}", params["type"], params["args"]))
        }
        "Log.entryAdded" if params["entry"]["level"] == "error" => {
            Some(format!("{}: {} ({})", params["entry"]["source"], params["entry"]["text"], params["entry"]["url"]))
        }
        _ => None,
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
