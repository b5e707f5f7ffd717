//! A steady request load for scenario tests: `workers` clients send the same GET in a loop
//! until stopped, counting answers. A failure is any answer but 200, or no answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
    first_failure: std::sync::Mutex<Option<String>>,
}

pub struct Load {
    counters: Arc<Counters>,
    workers: Vec<JoinHandle<()>>,
    started: Instant,
}

/// What a load achieved.
#[derive(Debug)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn per_second(&self) -> f64 {
        (self.ok + self.failed) as f64 / self.elapsed.as_secs_f64()
    }
}

impl Load {
    pub fn start(url: String, bearer: String, workers: usize) -> Load {
        let counters = Arc::new(Counters::default());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let workers = (0..workers)
            .map(|_| {
                let (c, http, url, bearer) = (counters.clone(), http.clone(), url.clone(), bearer.clone());
                tokio::spawn(async move {
                    while !c.stop.load(Ordering::Relaxed) {
                        match http.get(&url).bearer_auth(&bearer).send().await {
                            Ok(r) if r.status() == 200 => {
                                c.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => {
                                c.failed.fetch_add(1, Ordering::Relaxed);
                                let what = match other {
                                    Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                                    Err(e) => format!("no answer: {e}"),
                                };
                                c.first_failure.lock().unwrap().get_or_insert(what);
                            }
                        }
                    }
                })
            })
            .collect();
        Load { counters, workers, started: Instant::now() }
    }

    /// Answers so far (ok, failed).
    pub fn counts(&self) -> (u64, u64) {
        (self.counters.ok.load(Ordering::Relaxed), self.counters.failed.load(Ordering::Relaxed))
    }

    pub async fn finish(self) -> LoadReport {
        self.counters.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        let (ok, failed) = (self.counters.ok.load(Ordering::Relaxed), self.counters.failed.load(Ordering::Relaxed));
        LoadReport {
            ok,
            failed,
            first_failure: self.counters.first_failure.lock().unwrap().take(),
            elapsed: self.started.elapsed(),
        }
    }
}
