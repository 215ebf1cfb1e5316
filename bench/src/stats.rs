//! Summaries of samples (median, min, max, quartiles) and a tiny deterministic shuffler for round orders.

/// The summary of one init's samples for one metric.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p25: f64,
    pub p75: f64,
    pub n: usize,
}

pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(Summary {
        median: quantile(&v, 0.5),
        min: v[0],
        max: v[v.len() - 1],
        p25: quantile(&v, 0.25),
        p75: quantile(&v, 0.75),
        n: v.len(),
    })
}

/// 95% bootstrap interval of median(a) − median(b): resamples both with replacement `iters` times.
pub fn median_diff_ci(a: &[f64], b: &[f64], iters: usize, rng: &mut Rng) -> Option<(f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut scratch_a = vec![0.0; a.len()];
    let mut scratch_b = vec![0.0; b.len()];
    let mut diffs = Vec::with_capacity(iters);
    for _ in 0..iters {
        for x in scratch_a.iter_mut() {
            *x = a[(rng.next() % a.len() as u64) as usize];
        }
        for x in scratch_b.iter_mut() {
            *x = b[(rng.next() % b.len() as u64) as usize];
        }
        diffs.push(median_in_place(&mut scratch_a) - median_in_place(&mut scratch_b));
    }
    diffs.sort_by(|x, y| x.total_cmp(y));
    Some((quantile(&diffs, 0.025), quantile(&diffs, 0.975)))
}

fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    let (_, hi, _) = v.select_nth_unstable_by(n / 2, |x, y| x.total_cmp(y));
    let hi = *hi;
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..n / 2].iter().copied().fold(f64::MIN, f64::max);
        (lo + hi) / 2.0
    }
}

/// Linear interpolation between the closest ranks of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// xorshift64*: enough to shuffle the order of the inits in each round.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// 0..n in a random order.
    pub fn order(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quartiles() {
        let s = summarize(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            (s.median, s.min, s.max, s.p25, s.p75, s.n),
            (3.0, 1.0, 5.0, 2.0, 4.0, 5)
        );
        assert_eq!(summarize(&[1.0, 2.0]).unwrap().median, 1.5);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn bootstrap_interval_brackets_the_difference() {
        let a: Vec<f64> = (0..200).map(|i| 10.0 + (i % 7) as f64).collect();
        let b: Vec<f64> = (0..200).map(|i| (i % 7) as f64).collect();
        let (lo, hi) = median_diff_ci(&a, &b, 500, &mut Rng::new(3)).unwrap();
        assert!(lo <= 10.0 && 10.0 <= hi, "{lo} {hi}");
        let mut odd = vec![3.0, 1.0, 2.0];
        assert_eq!(median_in_place(&mut odd), 2.0);
        let mut even = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(median_in_place(&mut even), 2.5);
    }

    #[test]
    fn order_is_a_permutation() {
        let mut rng = Rng::new(7);
        let mut o = rng.order(6);
        o.sort();
        assert_eq!(o, vec![0, 1, 2, 3, 4, 5]);
    }
}
