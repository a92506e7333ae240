//! A bounded map that evicts its least recently used entry, in O(1): entries live in a slab
//! (`Vec`) threaded on a doubly linked list of indices, most recent first, and a `HashMap` finds
//! a key's slot. Small and free of `unsafe`; callers guard it with a lock of their own and never
//! hold that lock across an `.await`.

use std::collections::HashMap;
use std::hash::Hash;

/// No neighbour.
const NIL: usize = usize::MAX;

struct Slot<K, V> {
    key: K,
    value: V,
    /// More recently used neighbour.
    prev: usize,
    /// Less recently used neighbour.
    next: usize,
}

/// At most `capacity` entries; inserting into a full map evicts the least recently used one.
pub struct Lru<K, V> {
    index: HashMap<K, usize>,
    slots: Vec<Slot<K, V>>,
    /// Most recently used slot.
    head: usize,
    /// Least recently used slot: the next to go.
    tail: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Copy, V> Lru<K, V> {
    /// An empty map for at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { index: HashMap::new(), slots: Vec::new(), head: NIL, tail: NIL, capacity }
    }

    /// The value for `key`, which becomes the most recently used entry.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let at = *self.index.get(key)?;
        self.unlink(at);
        self.push_front(at);
        Some(&self.slots[at].value)
    }

    /// Sets `key` to `value` as the most recently used entry; returns the key evicted to make
    /// room, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<K> {
        if let Some(&at) = self.index.get(&key) {
            self.slots[at].value = value;
            self.unlink(at);
            self.push_front(at);
            return None;
        }
        let mut evicted = None;
        let at = if self.slots.len() < self.capacity {
            self.slots.push(Slot { key, value, prev: NIL, next: NIL });
            self.slots.len() - 1
        } else {
            // Full: the least recently used slot is reused in place.
            let at = self.tail;
            self.unlink(at);
            let old = std::mem::replace(&mut self.slots[at], Slot { key, value, prev: NIL, next: NIL });
            self.index.remove(&old.key);
            evicted = Some(old.key);
            at
        };
        self.index.insert(key, at);
        self.push_front(at);
        evicted
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) {
        let Some(at) = self.index.remove(key) else { return };
        self.unlink(at);
        // The last slot fills the hole so the slab stays dense.
        let last = self.slots.len() - 1;
        self.slots.swap(at, last);
        self.slots.pop();
        if at != last {
            let (prev, next) = (self.slots[at].prev, self.slots[at].next);
            match prev {
                NIL => self.head = at,
                p => self.slots[p].next = at,
            }
            match next {
                NIL => self.tail = at,
                n => self.slots[n].prev = at,
            }
            self.index.insert(self.slots[at].key, at);
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    fn unlink(&mut self, at: usize) {
        let (prev, next) = (self.slots[at].prev, self.slots[at].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
        self.slots[at].prev = NIL;
        self.slots[at].next = NIL;
    }

    fn push_front(&mut self, at: usize) {
        self.slots[at].next = self.head;
        match self.head {
            NIL => self.tail = at,
            h => self.slots[h].prev = at,
        }
        self.head = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_from_oldest(lru: &Lru<u32, u32>) -> Vec<u32> {
        let mut keys = Vec::new();
        let mut at = lru.tail;
        while at != NIL {
            keys.push(lru.slots[at].key);
            at = lru.slots[at].prev;
        }
        keys
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let mut lru = Lru::new(3);
        for key in [1, 2, 3] {
            assert_eq!(lru.insert(key, key * 10), None);
        }
        // Reading 1 makes 2 the oldest.
        assert_eq!(lru.get(&1), Some(&10));
        assert_eq!(lru.insert(4, 40), Some(2));
        assert_eq!(keys_from_oldest(&lru), [3, 1, 4]);
        assert_eq!(lru.get(&2), None);
        // Updating an entry refreshes it without evicting.
        assert_eq!(lru.insert(3, 31), None);
        assert_eq!(lru.insert(5, 50), Some(1));
        assert_eq!(keys_from_oldest(&lru), [4, 3, 5]);
        assert_eq!(lru.len(), 3);
    }

    #[test]
    fn removal_keeps_the_order_of_the_rest() {
        let mut lru = Lru::new(4);
        for key in [1, 2, 3, 4] {
            lru.insert(key, key);
        }
        lru.remove(&2);
        lru.remove(&9);
        assert_eq!(lru.len(), 3);
        assert_eq!(lru.get(&4), Some(&4));
        assert_eq!(lru.get(&1), Some(&1));
        assert_eq!(keys_from_oldest(&lru), [3, 4, 1]);
        lru.insert(5, 5);
        lru.insert(6, 6);
        assert_eq!(keys_from_oldest(&lru), [4, 1, 5, 6]);
    }
}
