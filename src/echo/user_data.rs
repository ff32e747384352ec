//! What a completion is about. The kernel hands back the 64 bits of
//! `user_data` untouched, so they carry everything the server needs to route
//! a CQE: the operation, the connection's slot, the slot's generation and,
//! for a send, the buffer it sends from.

/// The operations the server submits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// The multishot accept on the listener.
    Accept = 1,
    /// A connection's multishot receive.
    Recv = 2,
    /// A send of (part of) one buffer.
    Send = 3,
    /// The close of a connection's socket.
    Close = 4,
    /// An `AsyncCancel`: its own CQE says how many requests it found.
    Cancel = 5,
    /// The timeout that ends an accept backoff after EMFILE.
    Backoff = 6,
    /// The poll on the stop eventfd: SIGINT or SIGTERM arrived.
    Stop = 7,
}

impl Op {
    fn from_bits(bits: u64) -> Option<Op> {
        Some(match bits {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Close,
            5 => Op::Cancel,
            6 => Op::Backoff,
            7 => Op::Stop,
            _ => return None,
        })
    }
}

// ANCHOR: layout
/// A connection's slot and the generation of the connection in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub slot: u32,
    pub generation: u32,
}

/// `user_data`, unpacked: bits 60-63 hold the operation, 36-59 the slot,
/// 16-35 the generation and 0-15 the buffer id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserData {
    pub op: Op,
    pub key: Key,
    pub buf: u16,
}

/// Slots a ring can tell apart: 2^24, far more than RLIMIT_NOFILE allows.
pub const SLOTS: u32 = 1 << 24;
/// Generations a slot goes through before its numbers repeat.
pub const GENERATIONS: u32 = 1 << 20;
/// The buffer id of a send that is not from the ring: a ring has at most
/// 32768 buffers, so this id is never a real one.
pub const NO_BUF: u16 = u16::MAX;

// ANCHOR_END: layout

// ANCHOR: pack
impl UserData {
    pub fn pack(self) -> u64 {
        debug_assert!(self.key.slot < SLOTS && self.key.generation < GENERATIONS);
        (self.op as u64) << 60
            | (self.key.slot as u64) << 36
            | (self.key.generation as u64) << 16
            | self.buf as u64
    }

    /// `None` for bits no `pack` made: a CQE we cannot route.
    pub fn unpack(bits: u64) -> Option<UserData> {
        let key = Key {
            slot: (bits >> 36) as u32 & (SLOTS - 1),
            generation: (bits >> 16) as u32 & (GENERATIONS - 1),
        };
        let op = Op::from_bits(bits >> 60)?;
        Some(UserData {
            op,
            key,
            buf: bits as u16,
        })
    }
}
// ANCHOR_END: pack

impl UserData {
    /// An operation that belongs to no connection.
    pub fn of(op: Op) -> u64 {
        UserData::on(
            op,
            Key {
                slot: 0,
                generation: 0,
            },
            0,
        )
    }

    /// An operation on connection `key`, sending from buffer `buf` if any.
    pub fn on(op: Op, key: Key, buf: u16) -> u64 {
        UserData { op, key, buf }.pack()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_survives_the_round_trip() {
        let ops = [
            Op::Accept,
            Op::Recv,
            Op::Send,
            Op::Close,
            Op::Cancel,
            Op::Backoff,
            Op::Stop,
        ];
        for op in ops {
            for (slot, generation, buf) in [
                (0, 0, 0),
                (1, 2, 3),
                (SLOTS - 1, GENERATIONS - 1, u16::MAX),
                (12345, 678, 4095),
            ] {
                let ud = UserData {
                    op,
                    key: Key { slot, generation },
                    buf,
                };
                assert_eq!(UserData::unpack(ud.pack()), Some(ud));
            }
        }
    }

    #[test]
    fn fields_do_not_overlap() {
        let all = |op, slot, generation, buf| {
            UserData {
                op,
                key: Key { slot, generation },
                buf,
            }
            .pack()
        };
        let slot = all(Op::Accept, SLOTS - 1, 0, 0) & !all(Op::Accept, 0, 0, 0);
        let generation =
            all(Op::Accept, 0, GENERATIONS - 1, 0) & !all(Op::Accept, 0, 0, 0);
        let buf = all(Op::Accept, 0, 0, u16::MAX) & !all(Op::Accept, 0, 0, 0);
        assert_eq!(slot, ((1u64 << 24) - 1) << 36);
        assert_eq!(generation, ((1u64 << 20) - 1) << 16);
        assert_eq!(buf, 0xffff);
        assert_eq!(slot & generation, 0);
        assert_eq!(generation & buf, 0);
    }

    #[test]
    fn zero_and_unknown_operations_do_not_unpack() {
        // 0 is what a zeroed SQE carries: never one of ours.
        assert_eq!(UserData::unpack(0), None);
        assert_eq!(UserData::unpack(15 << 60), None);
    }

    #[test]
    fn the_same_slot_in_another_generation_is_another_key() {
        let old = UserData::on(
            Op::Send,
            Key {
                slot: 7,
                generation: 1,
            },
            9,
        );
        let new = UserData::on(
            Op::Send,
            Key {
                slot: 7,
                generation: 2,
            },
            9,
        );
        assert_ne!(old, new);
        assert_ne!(
            UserData::unpack(old).unwrap().key,
            UserData::unpack(new).unwrap().key
        );
    }
}
