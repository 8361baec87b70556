//! mkfs.aegisfs: checks the target, plans the geometry, then writes the new filesystem.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aegisfs_format::checksum::checksum_seed;
use aegisfs_format::disk::{Timestamp, BLOCKS_PER_GROUP, BLOCK_SIZE_U64};
use aegisfs_format::geometry::{Geometry, DEFAULT_INODE_SIZE};

use crate::build::{Builder, Stats};
use crate::cli::{format_uuid, parse_args, Options, UuidChoice, BLOCKS_PER_MIB, USAGE};
use crate::device::{open_target, Kind, Target};
use crate::format_ext::reserved_blocks;
use crate::mounts::find_mount;
use crate::progress::Bar;
use crate::rng::Rng;
use crate::size::human_bytes;
use crate::wipe;

pub const PROG: &str = "mkfs.aegisfs";

/// Exit status of a usage error (bad option, bad value, missing device).
pub const EXIT_USAGE: i32 = 1;
/// Exit status of an operational error (util-linux `MKFS_EX_ERROR`).
pub const EXIT_ERROR: i32 = 8;

pub use crate::tool::Env;

/// Runs mkfs with the arguments after the program name; returns the exit status.
pub fn run(args: &[OsString], env: &mut Env) -> i32 {
    let opts = match env.command(PROG, USAGE, parse_args(args), EXIT_USAGE) {
        Ok(opts) => opts,
        Err(status) => return status,
    };
    match format(&opts, env) {
        Ok(()) => 0,
        Err(e) => {
            env.error(PROG, e);
            EXIT_ERROR
        }
    }
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, d.subsec_nanos())
}

/// The geometry for `opts` on `device_blocks` blocks.
fn plan(
    opts: &Options,
    device_blocks: u64,
) -> Result<Geometry, aegisfs_format::error::FormatError> {
    Geometry::plan(
        device_blocks,
        opts.inodes.unwrap_or_default(),
        opts.inode_size.unwrap_or(DEFAULT_INODE_SIZE),
        opts.journal_mib.map(|m| m * BLOCKS_PER_MIB),
    )
}

/// The smallest device (in blocks) `opts` can be formatted on, if any.
fn minimum_blocks(opts: &Options) -> Option<u64> {
    let (mut lo, mut hi) = (1u64, 1u64 << 40);
    plan(opts, hi).ok()?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if plan(opts, mid).is_ok() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

fn format(opts: &Options, env: &mut Env) -> Result<(), String> {
    let dev = &opts.device;
    if let Some(why) = find_mount(dev, &env.mounts)? {
        return Err(format!("{why}: will not make a filesystem here"));
    }
    if let Some(src) = &opts.root_dir {
        // Checked before anything is written, so a typo does not cost the old filesystem.
        match std::fs::metadata(src) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{}: not a directory", src.display())),
            Err(e) => return Err(format!("{}: cannot stat: {e}", src.display())),
        }
    }
    let mut target = open_target(dev, opts.dry_run)?;
    let fs_bytes = target.usable_bytes(opts.size_bytes)?;
    let device_blocks = fs_bytes / BLOCK_SIZE_U64;
    let mut geo = match plan(opts, device_blocks) {
        Ok(g) => g,
        Err(e) => {
            return Err(match minimum_blocks(opts) {
                Some(min) if min > device_blocks => format!(
                    "{}: {} ({fs_bytes} bytes) is too small: with these options AegisFS \
                     needs at least {} ({} bytes)",
                    dev.display(),
                    human_bytes(fs_bytes),
                    human_bytes(min * BLOCK_SIZE_U64),
                    min * BLOCK_SIZE_U64
                ),
                _ => format!("cannot lay out the filesystem: {}", e.msg()),
            })
        }
    };

    let mut rng = Rng::from_os().map_err(|e| format!("getrandom failed: {e}"))?;
    let uuid = match opts.uuid {
        UuidChoice::Random => rng.uuid_v4(),
        UuidChoice::Clear => [0u8; 16],
        UuidChoice::Explicit(u) => u,
    };
    let seed = checksum_seed(&uuid);
    // Indexed directories hash names with a per-filesystem secret, so that names chosen
    // to collide on one filesystem do not collide on another.
    geo.set_dir_hash_key(opts.dir_index.then(|| rng.key128()));

    if opts.dry_run {
        if !opts.quiet {
            print_summary(env.stdout, opts, &geo, &uuid, None);
            let _ = writeln!(env.stdout, "Dry run: nothing was written.");
        }
        return Ok(());
    }

    if target.kind != Kind::Missing {
        let found = wipe::detect(&target, target.current_bytes)?;
        if !found.is_empty() {
            let what = found.join(", ");
            if !opts.force {
                // Asked whatever stdin is: a script that did not say -f (or pipe `yes`)
                // gets end of input, which is a no, instead of a lost filesystem.
                let _ = write!(
                    env.stdout,
                    "{} appears to contain existing data ({what}).\nProceed anyway? (y,N) ",
                    dev.display()
                );
                let _ = env.stdout.flush();
                let mut answer = String::new();
                env.stdin
                    .read_line(&mut answer)
                    .map_err(|e| format!("cannot read the answer: {e}"))?;
                if !env.stdin_is_tty {
                    let _ = writeln!(env.stdout, "{}", answer.trim_end());
                }
                if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                    return Err("aborted: nothing was written".to_string());
                }
            } else if !opts.quiet {
                let _ = writeln!(env.stdout, "Overwriting {what} on {}", dev.display());
            }
        }
    }

    let created = target.kind == Kind::Missing;
    target.prepare(fs_bytes)?;
    let written = write_fs(&target, &geo, seed, &uuid, rng, opts, env);
    if written.is_err() && created {
        // Leave no half-made image behind when mkfs created the file itself.
        let _ = std::fs::remove_file(dev);
    }
    let stats = written?;
    if !opts.quiet {
        print_summary(
            env.stdout,
            opts,
            &geo,
            &uuid,
            Some((&stats, opts.root_dir.as_deref())),
        );
    }
    Ok(())
}

fn write_fs(
    target: &Target,
    geo: &Geometry,
    seed: u32,
    uuid: &[u8; 16],
    rng: Rng,
    opts: &Options,
    env: &mut Env,
) -> Result<Stats, String> {
    // The whole device, not just the part the filesystem uses: blkid probes it all.
    wipe::wipe(target, target.current_bytes)?;
    let mut builder = Builder::new(geo, seed, now(), target, rng, env.stderr);
    builder.populate(opts.root_dir.as_deref())?;
    // A bar while the groups are written, on a terminal (mke2fs counts them there too).
    let mut bar = (env.stdout_is_tty && !opts.quiet).then(|| Bar::new("Writing groups"));
    let stdout = &mut *env.stdout;
    let result = builder.finish(
        uuid,
        &opts.label,
        opts.reserved_hundredths,
        &mut |done, groups| {
            if let Some(bar) = bar.as_mut() {
                bar.update(stdout, done, groups, "");
            }
        },
    );
    if let Some(bar) = bar.as_mut() {
        bar.clear(stdout);
    }
    result
}

/// The filesystem's features under mke2fs's names.
fn feature_names(geo: &Geometry) -> Vec<&'static str> {
    let mut names = Vec::new();
    if geo.journal_blocks() > 0 {
        names.push("has_journal");
    }
    names.push("xattr");
    if geo.dir_hash_key().is_some() {
        names.push("dir_index");
    }
    names
}

fn print_summary(
    out: &mut dyn Write,
    opts: &Options,
    geo: &Geometry,
    uuid: &[u8; 16],
    done: Option<(&Stats, Option<&Path>)>,
) {
    let bytes = geo.blocks_count() * BLOCK_SIZE_U64;
    let reserved = reserved_blocks(geo.data_blocks(), opts.reserved_hundredths);
    let mut lines = vec![
        format!(
            "{} AegisFS on {}",
            if done.is_some() {
                "Created"
            } else {
                "Would create"
            },
            opts.device.display()
        ),
        format!(
            "  size:        {} ({} blocks of {BLOCK_SIZE_U64} bytes)",
            human_bytes(bytes),
            geo.blocks_count()
        ),
        format!(
            "  groups:      {} ({BLOCKS_PER_GROUP} blocks per group)",
            geo.group_count()
        ),
        format!(
            "  inodes:      {} ({} per group, {} bytes each)",
            geo.inodes_count(),
            geo.inodes_per_group(),
            geo.inode_size()
        ),
        if geo.journal_blocks() == 0 {
            "  journal:     none".to_string()
        } else {
            format!(
                "  journal:     {} ({} blocks at block {})",
                human_bytes(geo.journal_blocks() * BLOCK_SIZE_U64),
                geo.journal_blocks(),
                geo.journal_start()
            )
        },
        format!(
            "  reserved:    {}.{:02}% ({reserved} blocks)",
            opts.reserved_hundredths / 100,
            opts.reserved_hundredths % 100
        ),
        format!("  features:    {}", feature_names(geo).join(" ")),
        format!("  UUID:        {}", format_uuid(uuid)),
        format!(
            "  label:       {}",
            if opts.label.is_empty() {
                "(none)".to_string()
            } else {
                String::from_utf8_lossy(&opts.label).into_owned()
            }
        ),
    ];
    if let Some((stats, _)) = done.filter(|_| opts.verbose) {
        lines.push(format!(
            "  free:        {} blocks, {} inodes",
            stats.free_blocks, stats.free_inodes
        ));
        lines.push(format!(
            "  data writes: {} ({} bytes)",
            stats.data_writes, stats.data_bytes
        ));
    }
    if let Some((stats, Some(dir))) = done {
        lines.push(format!(
            "  copied:      {} ({} files, {} directories, {} symlinks, {} special files, \
             {} hard links, {} data blocks, {} extended attributes, {} xattr blocks{})",
            dir.display(),
            stats.files,
            stats.dirs,
            stats.symlinks,
            stats.specials,
            stats.hard_links,
            stats.data_blocks,
            stats.xattrs,
            stats.xattr_blocks,
            if stats.xattrs_skipped > 0 {
                format!(", {} not copied", stats.xattrs_skipped)
            } else {
                String::new()
            }
        ));
    }
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
}
