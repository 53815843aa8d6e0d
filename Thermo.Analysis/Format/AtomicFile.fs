namespace Thermo.Analysis.Format

open System
open System.IO
open System.Runtime.InteropServices

/// Numbered write points, so that tests can kill a process at each place where it changes what a
/// reader sees. Every atomic write a reader can see passes two: before its rename (or swap) and after
/// it; writes inside a directory still being filled for a swap are not points, since no reader sees
/// them. With the environment variable `THERMO_CRASH_AT=N`, the process kills itself (SIGKILL: no `finally`, no
/// flush) on reaching its N-th write point, after printing `crash point N: WHAT` to standard error.
module WritePoints =
    /// The environment variable that names the write point to die at.
    [<Literal>]
    let Variable = "THERMO_CRASH_AT"

    let private crashAt =
        match Environment.GetEnvironmentVariable Variable with
        | null | "" -> 0
        | text ->
            match Int32.TryParse text with
            | true, n when n > 0 -> n
            | _ -> 0

    let mutable private reached = 0

    /// Marks a write point; `what` says which write and where, for the crash message.
    let hit (what: string) =
        if crashAt > 0 then
            let n = Threading.Interlocked.Increment(&reached)
            if n = crashAt then
                eprintfn "crash point %d: %s" n what
                Console.Error.Flush()
                Diagnostics.Process.GetCurrentProcess().Kill()
                Threading.Thread.Sleep Threading.Timeout.Infinite

/// Writes files so that a reader, or a process killed at any instant, only ever sees complete files.
module AtomicFile =
    module private Native =
        [<DllImport("libc", SetLastError = true, EntryPoint = "renameat2")>]
        extern int renameat2(int olddirfd, string oldpath, int newdirfd, string newpath, uint32 flags)

        /// AT_FDCWD: paths relative to the working directory (ours are absolute).
        let atWorkingDirectory = -100
        /// RENAME_EXCHANGE: swap two existing paths in one step.
        let exchange = 2u

    /// Swaps two existing directories in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`); false
    /// where the system or the file system cannot exchange (EINVAL, ENOSYS, ENOTSUP: the caller then falls
    /// back to two renames). Any other failure (permissions, a read-only or full file system) is an
    /// `IOException` naming the directory.
    let private tryExchange (a: string) (b: string) =
        if not (OperatingSystem.IsLinux()) then false
        else
            let result =
                try Some(Native.renameat2(Native.atWorkingDirectory, a, Native.atWorkingDirectory, b, Native.exchange))
                with :? EntryPointNotFoundException | :? DllNotFoundException -> None
            match result with
            | None -> false
            | Some 0 -> true
            | Some _ ->
                match Marshal.GetLastPInvokeError() with
                | 22 | 38 | 95 -> false
                | errno -> raise (IOException(sprintf "%s: cannot replace it (%s)" b (Marshal.GetPInvokeErrorMessage errno)))

    /// Temporary name beside `path` (same directory, so the final rename is atomic).
    let temporaryPath (path: string) =
        Path.Combine(
            Path.GetDirectoryName(Path.GetFullPath path),
            sprintf ".%s.%d.%s.tmp" (Path.GetFileName path) Environment.ProcessId (Guid.NewGuid().ToString "N")
        )

    let private stagingName = Text.RegularExpressions.Regex(@"^\..+\.\d+\.tmp$")

    /// Whether `path` lies inside a directory being filled by `replaceDirectory` (a `.NAME.PID.tmp`):
    /// no reader sees it until the swap, so writes there are not write points.
    let private isStaged (path: string) =
        let rec check (dir: string) =
            not (String.IsNullOrEmpty dir) && (stagingName.IsMatch(Path.GetFileName dir) || check (Path.GetDirectoryName dir))
        check (Path.GetDirectoryName(Path.GetFullPath path))

    /// Calls `write` with a temporary path, then renames it onto `path` (replacing any old file).
    /// On failure the temporary file is removed and `path` is untouched.
    let write (path: string) (write: string -> unit) =
        let dir = Path.GetDirectoryName(Path.GetFullPath path)
        Directory.CreateDirectory dir |> ignore
        let visible = not (isStaged path)
        let temp = temporaryPath path
        try
            try
                write temp
            with :? ParquetSharp.ParquetException as e when e.Message.Contains "IOError" ->
                // Parquet's native writer reports a full disk or an I/O fault in its own words: said as
                // the I/O error it is, naming the file.
                let detail = e.Message.Substring(e.Message.IndexOf "IOError").TrimEnd([| '\''; ')' |])
                raise (IOException(sprintf "%s: %s" path detail, e))
            if visible then WritePoints.hit ("before replacing " + path)
            File.Move(temp, path, true)
            if visible then WritePoints.hit ("after replacing " + path)
        with _ ->
            if File.Exists temp then File.Delete temp
            reraise ()

    /// Writes `text` to `path` atomically (UTF-8, no byte-order mark).
    let writeAllText (path: string) (text: string) =
        write path (fun temp -> File.WriteAllText(temp, text, Text.UTF8Encoding(false)))

    let private isAlive (pid: int) =
        pid = Environment.ProcessId
        || (try
                use p = Diagnostics.Process.GetProcessById pid
                not p.HasExited
            with _ -> false)

    /// What an interrupted `replaceDirectory` of `full` left beside it: `.NAME.PID.tmp` and
    /// `.NAME.PID.old` of processes that are gone. A directory that vanished between the two renames of
    /// the fallback (the old one moved aside, the new one not yet in place) gets its old content back;
    /// everything else left over is deleted. Leftovers of a live process (a concurrent writer) are kept.
    let cleanLeftovers (full: string) =
        let parent = Path.GetDirectoryName full
        let name = Path.GetFileName full
        if Directory.Exists parent then
            let pattern = Text.RegularExpressions.Regex("^\." + Text.RegularExpressions.Regex.Escape name + @"\.(\d+)\.(tmp|old)$")
            let leftovers =
                Directory.EnumerateDirectories parent
                |> Seq.choose (fun d ->
                    let m = pattern.Match(Path.GetFileName d)
                    if m.Success then Some(d, int m.Groups[1].Value, m.Groups[2].Value) else None)
                |> Seq.filter (fun (_, pid, _) -> pid = Environment.ProcessId || not (isAlive pid))
                |> Seq.toList
            for d, _, kind in leftovers do
                if kind = "old" && not (Directory.Exists full) then Directory.Move(d, full)
                elif Directory.Exists d then Directory.Delete(d, true)

    /// Replaces the directory `path` whole: `fill` writes everything into a fresh temporary sibling
    /// (.NAME.PID.tmp), which then takes the place of `path` in one atomic exchange (Linux's
    /// `renameat2(RENAME_EXCHANGE)`; where that is unavailable, the old one is moved aside to
    /// .NAME.PID.old first), so a reader sees the old directory or the new one, never a mix and, where
    /// the exchange is available, never neither. Leftovers of an earlier interrupted replacement are
    /// cleaned up first (`cleanLeftovers`). On failure the temporary directory is removed and `path` is
    /// untouched. Returns what `fill` returns.
    let replaceDirectory (path: string) (fill: string -> 'T) : 'T =
        let full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar)
        let parent = Path.GetDirectoryName full
        let name = Path.GetFileName full
        Directory.CreateDirectory parent |> ignore
        cleanLeftovers full
        let temp = Path.Combine(parent, sprintf ".%s.%d.tmp" name Environment.ProcessId)
        let old = Path.Combine(parent, sprintf ".%s.%d.old" name Environment.ProcessId)
        Directory.CreateDirectory temp |> ignore
        try
            let result = fill temp
            WritePoints.hit ("before replacing " + full)
            if not (Directory.Exists full) then Directory.Move(temp, full)
            elif tryExchange temp full then
                // `temp` now holds the old content.
                WritePoints.hit ("after exchanging " + full)
                Directory.Delete(temp, true)
            else
                Directory.Move(full, old)
                WritePoints.hit ("between the renames of " + full)
                Directory.Move(temp, full)
                Directory.Delete(old, true)
            WritePoints.hit ("after replacing " + full)
            result
        with _ ->
            // Failed between the fallback's two renames: the old directory goes back in place.
            if Directory.Exists old && not (Directory.Exists full) then Directory.Move(old, full)
            if Directory.Exists temp then Directory.Delete(temp, true)
            reraise ()
