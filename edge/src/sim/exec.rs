//! A single-threaded executor on the simulated clock: tasks run until all wait on a
//! timer; the caller then moves the clock to the next timer or arrival.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::World;

pub(super) type Task = Pin<Box<dyn Future<Output = ()>>>;

pub(super) struct Sleep {
    world: Rc<World>,
    at: u64,
}

impl Sleep {
    pub(super) fn new(world: Rc<World>, at: u64) -> Sleep {
        Sleep { world, at }
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let w = &self.world;
        if w.now_ms.get() >= self.at {
            return Poll::Ready(());
        }
        let seq = w.seq.get() + 1;
        w.seq.set(seq);
        w.timers.borrow_mut().push(Reverse((self.at, seq)));
        w.wakers.borrow_mut().insert(seq, cx.waker().clone());
        Poll::Pending
    }
}

/// Runs the tasks until none can make progress at the current simulated time.
#[derive(Default)]
pub(super) struct Exec {
    tasks: HashMap<usize, Task>,
    ready: Arc<Mutex<Vec<usize>>>,
    next: usize,
}

struct TaskWaker {
    id: usize,
    ready: Arc<Mutex<Vec<usize>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.ready.lock().expect("unpoisoned").push(self.id);
    }
}

impl Exec {
    pub(super) fn add(&mut self, t: Task) {
        self.next += 1;
        self.tasks.insert(self.next, t);
        self.ready.lock().expect("unpoisoned").push(self.next);
    }

    pub(super) fn run(&mut self, world: &World) {
        loop {
            for t in world.spawned.borrow_mut().drain(..).collect::<Vec<_>>() {
                self.add(t);
            }
            let ids = std::mem::take(&mut *self.ready.lock().expect("unpoisoned"));
            if ids.is_empty() {
                return;
            }
            for id in ids {
                let Some(task) = self.tasks.get_mut(&id) else {
                    continue;
                };
                let waker = Waker::from(Arc::new(TaskWaker {
                    id,
                    ready: self.ready.clone(),
                }));
                if task
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready()
                {
                    self.tasks.remove(&id);
                }
            }
        }
    }
}
