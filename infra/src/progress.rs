//! Progress of long operations (`kiln deploy`, its `--wait`): on a terminal an indicatif
//! spinner keeps the current step — or the live preset table — in place while the log
//! lines scroll above it; elsewhere (CI, pipes, tests) plain lines, each said once.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// Without a terminal: the last live text printed, so a poll that changed nothing
    /// prints nothing.
    last: Mutex<String>,
}

impl Progress {
    /// A spinner on stderr when it is a terminal, plain lines on stdout otherwise.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .expect("static template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            last: Mutex::new(String::new()),
        }
    }

    /// A line of the log; also the spinner's current step.
    pub fn line(&self, line: &str) {
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.set_message(line.to_owned());
            }
            None => println!("{line}"),
        }
    }

    /// Text redrawn in place (the live table); without a terminal printed when changed.
    pub fn live(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(text.trim_end().to_owned()),
            None => {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                if *last != text {
                    print!("{text}");
                    *last = text.to_owned();
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
