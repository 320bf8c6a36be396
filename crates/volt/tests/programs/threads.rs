// Rust std threads: spawn/join, mpsc channels, Mutex + Condvar, Arc, a
// scoped thread, sleep and Instant. Output is deterministic.
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let tx = tx.clone();
            thread::spawn(move || {
                let sum: u64 = (0..=i * 1000).sum();
                tx.send((i, sum)).unwrap();
                i * i
            })
        })
        .collect();
    drop(tx);
    let mut got: Vec<(u64, u64)> = rx.iter().collect();
    got.sort();
    println!("received {got:?}");
    let squares: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    println!("joined {squares:?}");

    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let p2 = pair.clone();
    let waiter = thread::spawn(move || {
        let (m, c) = &*p2;
        let mut v = m.lock().unwrap();
        while *v < 5 {
            v = c.wait(v).unwrap();
        }
        *v
    });
    for _ in 0..5 {
        let (m, c) = &*pair;
        *m.lock().unwrap() += 1;
        c.notify_one();
        thread::sleep(Duration::from_millis(2));
    }
    println!("condvar saw {}", waiter.join().unwrap());

    let mut data = vec![1u64; 1000];
    thread::scope(|s| {
        for chunk in data.chunks_mut(250) {
            s.spawn(move || chunk.iter_mut().for_each(|x| *x *= 3));
        }
    });
    println!("scoped sum {}", data.iter().sum::<u64>());

    let t = Instant::now();
    thread::sleep(Duration::from_millis(30));
    println!("slept at least 30 ms: {}", t.elapsed() >= Duration::from_millis(30));
    println!("named: {:?}", thread::Builder::new().name("worker-x".into()).spawn(|| thread::current().name().map(String::from)).unwrap().join().unwrap());
}
