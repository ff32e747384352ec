//! Connections by slot, each slot with a generation: the stale-CQE rule.
//!
//! A slot is reused as soon as its connection is gone, and the new
//! connection gets the next generation. A completion carries the key it was
//! submitted with, so one that arrives for a connection that is gone finds a
//! generation that does not match, and is never applied to the new one.

use uring_book::echo::user_data::{Key, GENERATIONS, SLOTS};

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab of values addressed by [`Key`].
pub struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// Stores `value` in a free slot; `None` when all 2^24 are taken.
    pub fn insert(&mut self, value: T) -> Option<Key> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.slots.len() < SLOTS as usize => {
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                self.slots.len() as u32 - 1
            }
            None => return None,
        };
        let entry = &mut self.slots[slot as usize];
        entry.value = Some(value);
        self.len += 1;
        Some(Key {
            slot,
            generation: entry.generation,
        })
    }

    // ANCHOR: stale
    /// The value of `key`, or `None` if the key is stale: its connection is
    /// gone, and the slot may hold another one now.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let entry = self.slots.get_mut(key.slot as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        entry.value.as_mut()
    }

    /// Takes the value out; the slot's next occupant gets a new generation.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        self.get_mut(key)?;
        let entry = &mut self.slots[key.slot as usize];
        entry.generation = (entry.generation + 1) % GENERATIONS;
        self.free.push(key.slot);
        self.len -= 1;
        entry.value.take()
    }
    // ANCHOR_END: stale
}

impl<T> Slots<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys of every value stored now.
    pub fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(slot, s)| Key {
                slot: slot as u32,
                generation: s.generation,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_key_goes_stale_and_the_slot_is_reused() {
        let mut slots = Slots::default();
        let a = slots.insert("a").unwrap();
        let b = slots.insert("b").unwrap();
        assert_ne!(a.slot, b.slot);
        assert_eq!(slots.remove(a), Some("a"));
        assert_eq!(slots.get_mut(a), None, "a stale key finds nothing");
        let c = slots.insert("c").unwrap();
        assert_eq!(c.slot, a.slot, "the slot is reused");
        assert_ne!(c.generation, a.generation);
        // A late completion for `a` must not reach `c`.
        assert_eq!(slots.get_mut(a), None);
        assert_eq!(slots.get_mut(c), Some(&mut "c"));
        assert_eq!(slots.remove(a), None, "a stale key removes nothing");
        assert_eq!(slots.len(), 2);
        assert_eq!(slots.keys(), vec![c, b]);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        let mut slots = Slots::default();
        let mut key = slots.insert(()).unwrap();
        for _ in 0..GENERATIONS + 3 {
            slots.remove(key).unwrap();
            key = slots.insert(()).unwrap();
            assert!(key.generation < GENERATIONS);
        }
        assert_eq!(key.slot, 0);
        assert_eq!(key.generation, 3);
    }

    #[test]
    fn unknown_slots_are_stale_too() {
        let mut slots: Slots<u8> = Slots::default();
        let key = Key {
            slot: 99,
            generation: 0,
        };
        assert_eq!(slots.get_mut(key), None);
        assert!(slots.is_empty());
    }
}
