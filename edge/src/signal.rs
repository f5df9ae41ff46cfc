//! A native one-shot wake-up for [`crate::service::Platform::signal`] (tests, the cost
//! simulation). The Worker's own is a JS promise made by the waiting request.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::service::{Wait, Wake};

#[derive(Default)]
struct Slot {
    fired: bool,
    waker: Option<Waker>,
}

struct Waiting(Rc<RefCell<Slot>>);

impl Future for Waiting {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.0.borrow_mut();
        if slot.fired {
            Poll::Ready(())
        } else {
            slot.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

pub fn local() -> (Wake, Wait) {
    let slot = Rc::new(RefCell::new(Slot::default()));
    let fire = slot.clone();
    let wake: Wake = Box::new(move || {
        let waker = {
            let mut s = fire.borrow_mut();
            s.fired = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    });
    (wake, Box::pin(Waiting(slot)))
}
