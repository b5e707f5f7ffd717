//! A TCP forwarder that can be cut, stalled and restored: a dependency (Postgres, Vault) that
//! goes away and comes back on the same address, without mocks.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP forwarder to `upstream` that can be cut, stalled and restored.
pub struct Proxy {
    pub addr: SocketAddr,
    upstream: String,
    /// `true` while bytes flow; `false` holds every byte in both directions.
    flow: watch::Sender<bool>,
    tasks: Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    acceptor: Option<JoinHandle<()>>,
    conns: Vec<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Arc::new(Proxy {
            addr: listener.local_addr().unwrap(),
            upstream,
            flow: watch::channel(true).0,
            tasks: Mutex::default(),
        });
        proxy.listen(listener);
        proxy
    }

    fn listen(self: &Arc<Self>, listener: TcpListener) {
        let me = self.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                let (upstream, flow) = (me.upstream.clone(), me.flow.subscribe());
                let conn = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, flow.clone()), pipe(sr, cw, flow));
                });
                let mut tasks = me.tasks.lock().unwrap();
                tasks.conns.retain(|t| !t.is_finished());
                tasks.conns.push(conn);
            }
        });
        self.tasks.lock().unwrap().acceptor = Some(acceptor);
    }

    /// The upstream is gone: live connections are closed and new ones refused.
    pub fn cut(&self) {
        let mut tasks = self.tasks.lock().unwrap();
        if let Some(a) = tasks.acceptor.take() {
            a.abort(); // drops the listener: connect() gets ECONNREFUSED
        }
        for c in tasks.conns.drain(..) {
            c.abort(); // drops both sockets of every live connection
        }
    }

    /// The upstream stops answering: connections stay open, nothing gets through.
    pub fn stall(&self) {
        self.flow.send_replace(false);
    }

    /// The upstream is back, on the same address.
    pub async fn restore(self: &Arc<Self>) {
        self.flow.send_replace(true);
        if self.tasks.lock().unwrap().acceptor.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding proxy on {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind proxy on {}: {e}", self.addr),
            }
        };
        self.listen(listener);
    }
}

/// Copies one direction, holding bytes while the flow is off.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut flow: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if flow.wait_for(|on| *on).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if flow.wait_for(|on| *on).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
