//! One progress line per layer, redrawn in place on a terminal; silent otherwise (or with `-q`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Line {
    label: String,
    done: u64,
    total: Option<u64>,
    state: &'static str,
}

#[derive(Debug, Clone)]
pub struct Progress {
    lines: Arc<Mutex<Vec<Line>>>,
    active: bool,
    stop: Arc<Mutex<bool>>,
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1_000_000.0)
}

impl Progress {
    pub fn new(active: bool) -> Progress {
        Progress {
            lines: Arc::new(Mutex::new(Vec::new())),
            active,
            stop: Arc::new(Mutex::new(false)),
        }
    }

    pub fn add(&self, label: &str, state: &'static str) -> usize {
        let mut l = self.lines.lock().expect("progress lock");
        l.push(Line {
            label: label.to_string(),
            done: 0,
            total: None,
            state,
        });
        l.len() - 1
    }

    pub fn update(&self, i: usize, done: u64, total: Option<u64>) {
        if let Some(l) = self.lines.lock().expect("progress lock").get_mut(i) {
            l.done = done;
            l.total = total;
            l.state = "downloading";
        }
    }

    pub fn set_state(&self, i: usize, state: &'static str) {
        if let Some(l) = self.lines.lock().expect("progress lock").get_mut(i) {
            l.state = state;
        }
    }

    fn render(&self, first: bool) {
        let lines = self.lines.lock().expect("progress lock").clone();
        let mut out = String::new();
        if !first && !lines.is_empty() {
            out.push_str(&format!("\x1b[{}A", lines.len()));
        }
        for l in &lines {
            let amount = match (l.state, l.total) {
                ("downloading", Some(t)) => format!("{} / {}", mb(l.done), mb(t)),
                ("downloading", None) => mb(l.done),
                _ => String::new(),
            };
            out.push_str(&format!("\x1b[2K{}: {} {}\n", l.label, l.state, amount));
        }
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(out.as_bytes());
        let _ = e.flush();
    }

    /// Run `f` while a thread redraws the lines every 200 ms.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        if !self.active {
            return f();
        }
        std::thread::scope(|s| {
            let me = self.clone();
            s.spawn(move || {
                me.render(true);
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    let stop = *me.stop.lock().expect("progress lock");
                    me.render(false);
                    if stop {
                        break;
                    }
                }
            });
            let r = f();
            *self.stop.lock().expect("progress lock") = true;
            r
        })
    }
}
