//! The benchmark corpus: real English sentences from documentation on this machine, embedded
//! once with the service's own model (all-MiniLM-L6-v2, 384-d) and cached.
//!
//! Sentences are extracted by `corpus.py` into `<cache>/sentences.txt`, then put in a fixed
//! pseudo-random order. A corpus of size N is the first Q + N items of that order: Q held-out
//! queries, then N documents. Every cache file (`corpus-<n>.bin`, `corpus-partial.bin`) holds a
//! prefix of the order, so a larger corpus re-embeds only what no cache file holds yet.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub const DIM: usize = 384;
const MAGIC: &[u8; 12] = b"PINAKBENCH1\n";
const EXTRACTOR: &str = include_str!("corpus.py");
/// Fixed so every machine with the same docs gets the same corpus.
const SHUFFLE_SEED: u64 = 0x5049_4e41_4b21;
/// Texts per call to the embedder (it batches 32 at a time inside, sorted by length).
const EMBED_BATCH: usize = 512;
/// Progress is checkpointed to `corpus-partial.bin` this often, so a long 100k build can resume.
const CHECKPOINT_EVERY: usize = 10_000;

pub struct Item {
    pub text: String,
    pub vector: Vec<f32>,
}

pub struct Corpus {
    pub queries: Vec<Item>,
    pub docs: Vec<Item>,
    /// Sentences/s when this run embedded any (None: all came from the cache).
    pub embed_rate: Option<f64>,
    pub embedded_now: usize,
    pub source_sentences: usize,
    /// Documents made by mixing two real vectors (the tail of `docs`); 0 unless asked for.
    pub synthetic: usize,
}

pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sentences(cache: &Path) -> Result<Vec<String>> {
    let path = cache.join("sentences.txt");
    if !path.exists() {
        println!(
            "corpus: extracting sentences from local documentation (man pages, /usr/share/doc, Python stdlib); once, ~1 min"
        );
        let script = cache.join("corpus.py");
        fs::write(&script, EXTRACTOR)?;
        let tmp = cache.join("sentences.txt.tmp");
        let status = std::process::Command::new("python3")
            .arg(&script)
            .arg(&tmp)
            .status()
            .context("running python3 to extract the corpus (install python3)")?;
        if !status.success() {
            bail!("corpus extraction failed ({status})");
        }
        fs::rename(&tmp, &path)?;
    }
    let text = fs::read_to_string(&path)?;
    let mut list: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
    // Fisher-Yates with a fixed seed: sources end up mixed, and the order is reproducible.
    let mut state = SHUFFLE_SEED;
    for i in (1..list.len()).rev() {
        let j = (splitmix(&mut state) % (i as u64 + 1)) as usize;
        list.swap(i, j);
    }
    Ok(list)
}

fn read_cache(path: &Path) -> Result<Vec<Item>> {
    let mut r = BufReader::new(fs::File::open(path)?);
    let mut magic = [0u8; 12];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        bail!("{} is not a pinak-bench corpus file", path.display());
    }
    let mut u = [0u8; 4];
    r.read_exact(&mut u)?;
    let dim = u32::from_le_bytes(u) as usize;
    r.read_exact(&mut u)?;
    let count = u32::from_le_bytes(u) as usize;
    if dim != DIM {
        bail!("{} holds {dim}-d vectors", path.display());
    }
    let mut items = Vec::with_capacity(count);
    let mut vbuf = vec![0u8; DIM * 4];
    for _ in 0..count {
        r.read_exact(&mut u)?;
        let mut t = vec![0u8; u32::from_le_bytes(u) as usize];
        r.read_exact(&mut t)?;
        r.read_exact(&mut vbuf)?;
        let vector = vbuf.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        items.push(Item { text: String::from_utf8(t)?, vector });
    }
    Ok(items)
}

fn write_cache(path: &Path, items: &[Item]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut w = BufWriter::new(fs::File::create(&tmp)?);
        w.write_all(MAGIC)?;
        w.write_all(&(DIM as u32).to_le_bytes())?;
        w.write_all(&(items.len() as u32).to_le_bytes())?;
        for it in items {
            w.write_all(&(it.text.len() as u32).to_le_bytes())?;
            w.write_all(it.text.as_bytes())?;
            for x in &it.vector {
                w.write_all(&x.to_le_bytes())?;
            }
        }
        w.flush()?;
    }
    fs::rename(&tmp, path)?;
    Ok(())
}

/// The longest cached prefix of `order` among the cache files.
fn best_prefix(cache: &Path, order: &[String], want: usize) -> Vec<Item> {
    let mut best: Vec<Item> = Vec::new();
    let Ok(dir) = fs::read_dir(cache) else { return best };
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("corpus-") && n.ends_with(".bin"))
        })
        .collect();
    files.sort();
    for f in files {
        let Ok(mut items) = read_cache(&f) else { continue };
        let matching = items.iter().zip(order).take_while(|(it, s)| &it.text == *s).count();
        items.truncate(matching.min(want));
        if items.len() > best.len() {
            best = items;
        }
    }
    best
}

pub fn size_label(n: usize) -> String {
    if n.is_multiple_of(1_000_000) {
        format!("{}m", n / 1_000_000)
    } else if n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Loads (or builds and caches) `n_queries` held-out queries and `n_docs` documents, of which
/// the first `real_docs` are real sentences and the rest synthetic mixes of those.
pub fn load(
    cache: &Path,
    model_dir: Option<&Path>,
    n_docs: usize,
    n_queries: usize,
    real_docs: usize,
) -> Result<Corpus> {
    fs::create_dir_all(cache)?;
    let order = sentences(cache)?;
    let real_docs = real_docs.min(n_docs);
    let want = real_docs + n_queries;
    if order.len() < want {
        bail!(
            "only {} distinct sentences on this machine; {want} needed (use a smaller --size, or --real N to mix the rest)",
            order.len()
        );
    }
    let target = cache.join(format!("corpus-{}.bin", size_label(real_docs)));
    let mut items = best_prefix(cache, &order, want);
    let cached = items.len();
    let mut embed_rate = None;
    if cached < want {
        let dir = model_dir.context(
            "the corpus must be embedded: set PINAK_MODEL_DIR (scripts/stack.sh install writes it to .tools/env)",
        )?;
        let todo = want - cached;
        println!(
            "corpus: embedding {todo} sentences with all-MiniLM-L6-v2 ({cached} cached); at ~100 sentences/s on 2 cores this takes ~{} min",
            todo / 6000 + 1
        );
        let model = pinak_api::embedding::LocalEmbedder::load(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let started = Instant::now();
        let mut since_checkpoint = 0;
        while items.len() < want {
            let end = (items.len() + EMBED_BATCH).min(want);
            let texts: Vec<&str> = order[items.len()..end].iter().map(String::as_str).collect();
            let vectors = model.embed(&texts).map_err(|e| anyhow::anyhow!("{e}"))?;
            for (t, v) in texts.iter().zip(vectors) {
                items.push(Item { text: (*t).to_owned(), vector: v });
            }
            since_checkpoint += texts.len();
            let done = items.len() - cached;
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!(
                "corpus: {}/{} embedded ({rate:.0}/s, ~{:.0} s left)",
                items.len(),
                want,
                (want - items.len()) as f64 / rate
            );
            if since_checkpoint >= CHECKPOINT_EVERY && items.len() < want {
                write_cache(&cache.join("corpus-partial.bin"), &items)?;
                since_checkpoint = 0;
            }
        }
        embed_rate = Some(todo as f64 / started.elapsed().as_secs_f64());
        write_cache(&target, &items)?;
        let _ = fs::remove_file(cache.join("corpus-partial.bin"));
        println!("corpus: cached in {}", target.display());
    } else if !target.exists() {
        write_cache(&target, &items)?;
    }
    let mut docs = items.split_off(n_queries);
    let synthetic = n_docs - docs.len();
    extend_synthetic(&mut docs, synthetic);
    Ok(Corpus {
        queries: items,
        docs,
        embed_rate,
        embedded_now: want - cached,
        source_sentences: order.len(),
        synthetic,
    })
}

/// Appends `n` synthetic documents, each the normalised mix t·a + (1-t)·b of two real
/// documents (t in [0.25, 0.75], fixed seed): vectors with the real data's neighbourhood
/// structure, for scale runs beyond the sentences the machine holds. Labelled in the report.
pub fn extend_synthetic(docs: &mut Vec<Item>, n: usize) {
    let real = docs.len();
    if n == 0 || real < 2 {
        return;
    }
    let mut state = SHUFFLE_SEED ^ 0x5359_4e54; // "SYNT"
    docs.reserve(n);
    for _ in 0..n {
        let a = (splitmix(&mut state) % real as u64) as usize;
        let b = (splitmix(&mut state) % real as u64) as usize;
        let t = 0.25 + 0.5 * (splitmix(&mut state) >> 11) as f32 / (1u64 << 53) as f32;
        let mut v: Vec<f32> = docs[a].vector.iter().zip(&docs[b].vector).map(|(x, y)| t * x + (1.0 - t) * y).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
        v.iter_mut().for_each(|x| *x /= norm);
        docs.push(Item { text: format!("synthetic mix of documents {a} and {b}"), vector: v });
    }
}

/// Squared L2 distance, accumulated in f32 like pgvector.
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Exact top-`k` document indices (of `docs` restricted to `members`) for every query,
/// nearest first. Brute force on two threads.
pub fn ground_truth(queries: &[Item], docs: &[Item], members: &[usize], k: usize) -> Vec<Vec<usize>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(1);
    let chunk = queries.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(chunk)
            .map(|qs| {
                s.spawn(move || {
                    qs.iter()
                        .map(|q| {
                            let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
                            for &i in members {
                                let d = l2sq(&q.vector, &docs[i].vector);
                                if best.len() < k || d < best[best.len() - 1].0 {
                                    let pos = best.partition_point(|(bd, _)| *bd <= d);
                                    best.insert(pos, (d, i));
                                    best.truncate(k);
                                }
                            }
                            best.into_iter().map(|(_, i)| i).collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("ground truth thread")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: [f32; 2]) -> Item {
        Item { text: String::new(), vector: v.to_vec() }
    }

    #[test]
    fn synthetic_documents_are_unit_mixes_of_real_ones() {
        let mut docs = vec![item([1.0, 0.0]), item([0.0, 1.0])];
        extend_synthetic(&mut docs, 50);
        assert_eq!(docs.len(), 52);
        for d in &docs[2..] {
            let norm: f32 = d.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
            assert!(d.vector.iter().all(|x| *x >= 0.0), "a convex mix of the two real vectors");
            assert!(d.text.starts_with("synthetic mix"));
        }
        let again = {
            let mut d2 = vec![item([1.0, 0.0]), item([0.0, 1.0])];
            extend_synthetic(&mut d2, 50);
            d2
        };
        assert_eq!(again[30].vector, docs[30].vector, "fixed seed");
    }

    #[test]
    fn ground_truth_is_nearest_first_within_members() {
        let docs = vec![item([0.0, 0.0]), item([1.0, 0.0]), item([0.2, 0.0]), item([5.0, 0.0])];
        let queries = vec![item([0.0, 0.0]), item([4.0, 0.0])];
        let truth = ground_truth(&queries, &docs, &[1, 2, 3], 2);
        assert_eq!(truth, vec![vec![2, 1], vec![3, 1]]);
    }

    #[test]
    fn cache_round_trips() {
        let dir = std::env::temp_dir().join(format!("pinak-bench-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("corpus-2.bin");
        let items = vec![
            Item { text: "a b\tc".into(), vector: vec![0.5; DIM] },
            Item { text: "ü".into(), vector: vec![-1.0; DIM] },
        ];
        write_cache(&path, &items).unwrap();
        let back = read_cache(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].text.as_str(), back[1].vector[DIM - 1]), ("a b\tc", -1.0));
        let order = vec!["a b\tc".to_string(), "other".to_string()];
        assert_eq!(best_prefix(&dir, &order, 5).len(), 1, "only the matching prefix is reused");
        fs::remove_dir_all(&dir).unwrap();
    }
}
