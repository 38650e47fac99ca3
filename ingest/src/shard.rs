//! Which shard of a sharded crawl this process runs: `--shard K/N`, or
//! `--shard auto`, read from the batch scheduler that started it.
//!
//! | scheduler | index | count |
//! | --- | --- | --- |
//! | any (and HTCondor, from the submit file) | `ARCOLAKE_SHARD_INDEX` | `ARCOLAKE_SHARD_COUNT` |
//! | SLURM job array | `SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` (÷ `SLURM_ARRAY_TASK_STEP`) | `SLURM_ARRAY_TASK_COUNT`, else from min, max and step |
//! | Kubernetes indexed Job | `JOB_COMPLETION_INDEX` | `ARCOLAKE_SHARD_COUNT` (the Job's `completions`) |
//!
//! HTCondor sets no process number in a job's environment; its submit file
//! passes `$(Process)` as `ARCOLAKE_SHARD_INDEX` (or writes `--shard
//! $(Process)/N`), see `deploy/htcondor/`.

use catalog::store::crawl::Shard;

/// The shard a `--shard` value names: `K/N` or `auto`, with `auto` read
/// through `var` (the process environment, or a test's).
pub fn resolve(spec: &str, var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    if spec.trim() == "auto" {
        from_env(var)
    } else {
        spec.parse()
    }
}

/// The shard the scheduler's environment names (see the module's table).
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let number = |name: &str| -> Result<Option<i64>, String> {
        var(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{name}={v:?} is not a whole number"))
            })
            .transpose()
    };
    let shard = |index: i64, count: i64, from: &str| -> Result<Shard, String> {
        let index = u32::try_from(index)
            .map_err(|_| format!("{from}: shard index {index} is out of range"))?;
        let count = u32::try_from(count)
            .map_err(|_| format!("{from}: shard count {count} is out of range"))?;
        Shard::new(index, count).map_err(|e| format!("{from}: {e}"))
    };
    let count = number("ARCOLAKE_SHARD_COUNT")?;
    if let Some(index) = number("ARCOLAKE_SHARD_INDEX")? {
        let count = count.ok_or("ARCOLAKE_SHARD_INDEX is set but ARCOLAKE_SHARD_COUNT is not")?;
        return shard(index, count, "ARCOLAKE_SHARD_INDEX/ARCOLAKE_SHARD_COUNT");
    }
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let count = match (
            number("SLURM_ARRAY_TASK_COUNT")?,
            number("SLURM_ARRAY_TASK_MAX")?,
        ) {
            (Some(c), _) => c,
            (None, Some(max)) => (max - min) / step + 1,
            (None, None) => {
                return Err(
                    "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT \
                            nor SLURM_ARRAY_TASK_MAX is"
                        .into(),
                );
            }
        };
        if (id - min) % step != 0 {
            return Err(format!(
                "SLURM array task {id} is not on the array's step {step} from {min}"
            ));
        }
        return shard((id - min) / step, count, "SLURM job array");
    }
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let count = count.ok_or(
            "JOB_COMPLETION_INDEX is set but ARCOLAKE_SHARD_COUNT is not: set it to the Job's completions",
        )?;
        return shard(index, count, "Kubernetes indexed Job");
    }
    Err(
        "--shard auto found no shard in the environment: set ARCOLAKE_SHARD_INDEX and \
         ARCOLAKE_SHARD_COUNT, or run as a SLURM job array (SLURM_ARRAY_TASK_ID) or a \
         Kubernetes indexed Job (JOB_COMPLETION_INDEX with ARCOLAKE_SHARD_COUNT)"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn shard(index: u32, count: u32) -> Shard {
        Shard::new(index, count).unwrap()
    }

    #[test]
    fn explicit_shards_count_from_zero() {
        assert_eq!(resolve("3/4", env(&[])), Ok(shard(3, 4)));
        assert!(
            resolve("4/4", env(&[]))
                .unwrap_err()
                .contains("from 0 to 3")
        );
        assert!(resolve("1/0", env(&[])).is_err());
        assert!(resolve("1", env(&[])).unwrap_err().contains("K/N"));
        assert!(resolve("a/4", env(&[])).is_err());
    }

    #[test]
    fn slurm_arrays_from_their_count_or_their_range() {
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
        ]);
        assert_eq!(resolve("auto", e), Ok(shard(2, 4)));
        // --array=1-4: tasks 1..4 are shards 0..3.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "4"),
        ]);
        assert_eq!(resolve("auto", e), Ok(shard(3, 4)));
        // --array=0-6:2: tasks 0, 2, 4, 6.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "6"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert_eq!(resolve("auto", e), Ok(shard(2, 4)));
        let e = env(&[("SLURM_ARRAY_TASK_ID", "2")]);
        assert!(
            resolve("auto", e)
                .unwrap_err()
                .contains("SLURM_ARRAY_TASK_COUNT")
        );
    }

    #[test]
    fn kubernetes_and_generic_variables() {
        let e = env(&[("JOB_COMPLETION_INDEX", "1"), ("ARCOLAKE_SHARD_COUNT", "4")]);
        assert_eq!(resolve("auto", e), Ok(shard(1, 4)));
        let e = env(&[("JOB_COMPLETION_INDEX", "1")]);
        assert!(resolve("auto", e).unwrap_err().contains("completions"));
        // The explicit variables win over a scheduler's.
        let e = env(&[
            ("ARCOLAKE_SHARD_INDEX", "0"),
            ("ARCOLAKE_SHARD_COUNT", "2"),
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ]);
        assert_eq!(resolve("auto", e), Ok(shard(0, 2)));
        let e = env(&[("ARCOLAKE_SHARD_INDEX", "x"), ("ARCOLAKE_SHARD_COUNT", "2")]);
        assert!(resolve("auto", e).unwrap_err().contains("whole number"));
        assert!(resolve("auto", env(&[])).unwrap_err().contains("no shard"));
    }

    #[test]
    fn ownership_is_by_item_and_splits_evenly() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            let id = format!("S2A_{i:05}");
            let owners: Vec<u32> = (0..4).filter(|k| shard(*k, 4).owns(&id)).collect();
            assert_eq!(owners.len(), 1, "{id} has one owner");
            counts[owners[0] as usize] += 1;
        }
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
        // The catalog's crawl_shard_hash of "a" (md5 0cc175b9…).
        assert_eq!(Shard::hash("a"), 0x0cc1_75b9);
    }
}
