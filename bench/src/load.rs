//! Closed-loop load generation: `c` workers, each issuing one request at a time, until a
//! request count or a time limit is reached (whichever comes first). Latency is measured per
//! request from send to fully-read response.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One request kind. Returns recall@k of the answer when that is meaningful.
pub trait Op: Send + 'static {
    fn call(&mut self, seq: usize) -> impl Future<Output = anyhow::Result<Option<f64>>> + Send;
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_ops: usize,
    pub max_time: Duration,
}

/// A request that takes longer than this counts as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub conc: usize,
    pub ops: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Sorted latencies of successful requests, in ms.
    pub lat_ms: Vec<f64>,
    pub recall_sum: f64,
    pub recall_n: usize,
}

impl Cell {
    pub fn throughput(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ops as f64 / s } else { 0.0 }
    }

    /// Nearest-rank percentile.
    pub fn pct(&self, p: f64) -> f64 {
        if self.lat_ms.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.lat_ms.len() as f64).ceil() as usize;
        self.lat_ms[rank.clamp(1, self.lat_ms.len()) - 1]
    }

    pub fn recall(&self) -> Option<f64> {
        (self.recall_n > 0).then(|| self.recall_sum / self.recall_n as f64)
    }
}

/// Runs `workers` concurrently (one in-flight request each) within `limits`. Request `i`
/// (counted across workers from 0) is called with `seq_start + i`. Returns the workers so
/// their connections can be reused for the next cell.
pub async fn drive<O: Op>(workers: Vec<O>, limits: Limits, seq_start: usize) -> (Cell, Vec<O>) {
    let conc = workers.len();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + limits.max_time;
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut c = Cell::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= limits.max_ops || Instant::now() >= deadline {
                        break;
                    }
                    let t = Instant::now();
                    match tokio::time::timeout(OP_TIMEOUT, w.call(seq_start + i)).await {
                        Ok(Ok(r)) => {
                            c.lat_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                            c.ops += 1;
                            if let Some(r) = r {
                                c.recall_sum += r;
                                c.recall_n += 1;
                            }
                        }
                        Ok(Err(e)) => {
                            c.errors += 1;
                            c.first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                        Err(_) => {
                            c.errors += 1;
                            c.first_error.get_or_insert_with(|| format!("request took over {OP_TIMEOUT:?}"));
                        }
                    }
                }
                (w, c)
            })
        })
        .collect();
    let mut total = Cell { conc, ..Default::default() };
    let mut back = Vec::with_capacity(conc);
    for h in handles {
        let (w, c) = h.await.expect("load worker panicked");
        back.push(w);
        total.ops += c.ops;
        total.errors += c.errors;
        if total.first_error.is_none() {
            total.first_error = c.first_error;
        }
        total.lat_ms.extend(c.lat_ms);
        total.recall_sum += c.recall_sum;
        total.recall_n += c.recall_n;
    }
    total.elapsed = start.elapsed();
    total.lat_ms.sort_by(|a, b| a.total_cmp(b));
    (total, back)
}

/// A short unrecorded run first (connections, caches, prepared statements), then the real one.
pub async fn warm_and_drive<O: Op>(workers: Vec<O>, limits: Limits, warm: Duration) -> (Cell, Vec<O>) {
    let conc = workers.len();
    let (_, workers) = drive(workers, Limits { max_ops: (conc * 4).max(20), max_time: warm }, 1_000_000).await;
    drive(workers, limits, 0).await
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count;
    impl Op for Count {
        async fn call(&mut self, seq: usize) -> anyhow::Result<Option<f64>> {
            if seq == 3 { anyhow::bail!("boom") } else { Ok(Some(1.0)) }
        }
    }

    #[tokio::test]
    async fn drive_stops_at_the_request_limit_and_counts_errors() {
        let (c, back) = drive(vec![Count, Count], Limits { max_ops: 10, max_time: Duration::from_secs(10) }, 0).await;
        assert_eq!((c.ops, c.errors, back.len()), (9, 1, 2));
        assert_eq!(c.recall(), Some(1.0));
        assert!(c.first_error.unwrap().contains("boom"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let c = Cell { lat_ms: (1..=100).map(f64::from).collect(), ..Default::default() };
        assert_eq!((c.pct(50.0), c.pct(99.0), c.pct(100.0)), (50.0, 99.0, 100.0));
    }
}
