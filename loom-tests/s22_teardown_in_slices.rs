//! Scenario 22: a teardown in slices on a background reclaimer. The table holds a
//! value in each of its two shards; under loom a slice is one smallest array
//! (`TEARDOWN_SLICE` in the shim), so the reclaimer's thread drains shard 0 (whose
//! value a handle still holds), queues the rest as a job of its own, and drains
//! shard 1 (the other value, destroyed there) when that job runs. Meanwhile the
//! program reads the ticket, drops its handle and the map, and shuts the reclaimer
//! down. The ticket may read reclaimed only once both slices ran: the unheld value's
//! destructor, which runs in the second slice, reads the ticket and finds it not
//! reclaimed yet (a check that needs no lucky interleaving: since the passes run a
//! re-queued slice in the same pass, loom within its preemption bound never stopped
//! the thread between the slices for the program's own look, which is kept too).
//! Each value is destroyed exactly once, and the held one only after its handle
//! goes. (Each slice here ends at the end of an array, so a slice's place inside an
//! array is not exercised: a unit test in `src/table/mod.rs` covers that.)

mod common;

use atomic_map::{AtomicMap, Reclaimer, Retired};
use common::{Drops, Fixed, Probe, flush_epoch, one_key_per_shard};
use loom::sync::{Arc, Mutex};

/// The ticket, once the clear has returned it.
type Ticket = Arc<Mutex<Option<Retired>>>;

/// A value that, when destroyed, finds its generation's ticket (if the program has
/// it by then) not reclaimed yet: it is destroyed by the teardown's last slice, so
/// the ticket is marked after it.
struct DestroyedBeforeTheTicket {
    probe: Probe,
    ticket: Option<Ticket>,
}

impl Drop for DestroyedBeforeTheTicket {
    fn drop(&mut self) {
        if let Some(ticket) = &self.ticket {
            if let Some(retired) = ticket.lock().unwrap().as_ref() {
                assert!(
                    !retired.is_reclaimed(),
                    "the ticket read reclaimed while the teardown's last slice was running"
                );
            }
        }
    }
}

#[test]
fn teardown_in_slices() {
    common::model("teardown_in_slices", || {
        let drops = Drops::default();
        let reclaimer = Reclaimer::new();
        let map: AtomicMap<u8, DestroyedBeforeTheTicket, Fixed> =
            common::builder().reclaimer(&reclaimer).build();
        let (first, second) = one_key_per_shard();
        let ticket: Ticket = Arc::new(Mutex::new(None));
        map.insert(
            first,
            DestroyedBeforeTheTicket {
                probe: drops.probe(1),
                ticket: None,
            },
        );
        map.insert(
            second,
            DestroyedBeforeTheTicket {
                probe: drops.probe(2),
                ticket: Some(ticket.clone()),
            },
        );
        let held = map.get(&first).unwrap();

        *ticket.lock().unwrap() = Some(map.clear_async());
        // Racing the reclaimer's thread: after its first slice only `first`'s entry
        // (held) has left the table, so a ticket read reclaimed there would see no
        // value destroyed.
        if ticket.lock().unwrap().as_ref().unwrap().is_reclaimed() {
            assert_eq!(
                drops.count(),
                1,
                "the ticket read reclaimed after the first slice"
            );
        }
        assert_eq!(held.probe.read(), 1);
        drop(held);
        drop(map);
        // The thread exits once its last user and the map's account are gone, i.e.
        // after every slice and the held value's destruction; `shutdown` joins it.
        reclaimer.shutdown();
        let retired = ticket.lock().unwrap().take().expect("stored above");
        assert!(retired.is_reclaimed());
        assert_eq!(drops.count(), 2);
        flush_epoch();
    });
}
