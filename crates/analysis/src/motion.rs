//! A cheap test for change between analysed frames: the mean absolute difference of the luma
//! averaged over a coarse grid. Noise and compression flicker average out in the cells; a
//! person entering moves several cells by tens of levels.

/// Grid cells across and down.
pub const GRID: (usize, usize) = (32, 18);
/// Mean change per cell (0-255) at or above which a frame counts as moving.
pub const THRESHOLD: f32 = 1.5;

/// The grid of a `width` x `height` luma plane (packed rows).
pub fn grid(luma: &[u8], width: usize, height: usize) -> Vec<f32> {
    let (gw, gh) = GRID;
    let mut sums = vec![0u64; gw * gh];
    let mut counts = vec![0u32; gw * gh];
    if width == 0 || height == 0 {
        return vec![0.0; gw * gh];
    }
    // Every 4th pixel of every 4th row is plenty.
    for y in (0..height).step_by(4) {
        let row = luma.get(y * width..(y + 1) * width).unwrap_or_default();
        let gy = y * gh / height;
        for (x, v) in row.iter().enumerate().step_by(4) {
            let cell = gy * gw + x * gw / width;
            if let (Some(s), Some(c)) = (sums.get_mut(cell), counts.get_mut(cell)) {
                *s += u64::from(*v);
                *c += 1;
            }
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(s, c)| if *c == 0 { 0.0 } else { *s as f32 / *c as f32 })
        .collect()
}

/// Mean absolute difference of two grids.
pub fn change(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return f32::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn still_frames_do_not_move_and_a_block_does() {
        let (w, h) = (320, 180);
        let a = vec![100u8; w * h];
        let mut b = a.clone();
        assert!(change(&grid(&a, w, h), &grid(&b, w, h)) < THRESHOLD);
        for y in 40..140 {
            for x in 100..200 {
                if let Some(p) = b.get_mut(y * w + x) {
                    *p = 200;
                }
            }
        }
        assert!(change(&grid(&a, w, h), &grid(&b, w, h)) >= THRESHOLD);
        assert!(change(&[], &[]).is_infinite());
    }
}
