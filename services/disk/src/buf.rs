//! Buffers aligned to 4 KiB. O_DIRECT moves data straight between the device and user
//! memory, so the kernel requires the buffer, the offset and the length to be aligned to
//! the device's logical block size; 4096 covers 512-byte and 4K-sector disks alike.

use crate::layout::BLOCK;

/// One 4 KiB block, aligned for O_DIRECT.
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct Block(pub [u8; BLOCK]);

impl Block {
    pub fn zeroed() -> Block {
        Block([0; BLOCK])
    }
}

impl Default for Block {
    fn default() -> Block {
        Block::zeroed()
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.0.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        write!(f, "Block({used} bytes up to the last non-zero one)")
    }
}

/// Several contiguous aligned blocks, seen as one byte slice.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Blocks(Vec<Block>);

impl Blocks {
    pub fn zeroed(count: usize) -> Blocks {
        Blocks(vec![Block::zeroed(); count])
    }

    /// Enough blocks to hold `bytes`, zero-padded.
    pub fn from_bytes(bytes: &[u8]) -> Blocks {
        let mut b = Blocks::zeroed(bytes.len().div_ceil(BLOCK));
        b.as_bytes_mut()[..bytes.len()].copy_from_slice(bytes);
        b
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }

    pub fn block(&self, i: usize) -> &Block {
        &self.0[i]
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Block` is `repr(C)` around a byte array whose size equals its alignment,
        // so the Vec's elements are contiguous bytes with no padding, all initialized.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.0.len() * BLOCK) }
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`; the exclusive borrow of the Vec makes this one unique.
        unsafe {
            std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), self.0.len() * BLOCK)
        }
    }
}

impl From<Block> for Blocks {
    fn from(b: Block) -> Blocks {
        Blocks(vec![b])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_and_contiguous() {
        let mut b = Blocks::from_bytes(&[7u8; BLOCK + 1]);
        assert_eq!(b.count(), 2);
        assert_eq!(b.as_bytes().as_ptr() as usize % BLOCK, 0);
        assert_eq!(b.as_bytes().len(), 2 * BLOCK);
        assert_eq!(b.as_bytes()[BLOCK], 7);
        assert_eq!(b.as_bytes()[BLOCK + 1], 0);
        b.as_bytes_mut()[BLOCK + 1] = 9;
        assert_eq!(b.block(1).0[1], 9);
        assert_eq!(std::mem::size_of::<Block>(), BLOCK);
    }
}
