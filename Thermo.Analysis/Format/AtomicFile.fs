namespace Thermo.Analysis

open System.IO

/// Writes files so that a reader, or a process killed at any instant, only ever sees complete files.
module AtomicFile =
    /// Temporary name beside `path` (same directory, so the final rename is atomic).
    let temporaryPath (path: string) =
        Path.Combine(
            Path.GetDirectoryName(Path.GetFullPath path),
            sprintf ".%s.%d.%s.tmp" (Path.GetFileName path) System.Environment.ProcessId (System.Guid.NewGuid().ToString "N")
        )

    /// Calls `write` with a temporary path, then renames it onto `path` (replacing any old file).
    /// On failure the temporary file is removed and `path` is untouched.
    let write (path: string) (write: string -> unit) =
        let dir = Path.GetDirectoryName(Path.GetFullPath path)
        Directory.CreateDirectory dir |> ignore
        let temp = temporaryPath path
        try
            write temp
            File.Move(temp, path, true)
        with _ ->
            if File.Exists temp then File.Delete temp
            reraise ()

    /// Writes `text` to `path` atomically (UTF-8, no byte-order mark).
    let writeAllText (path: string) (text: string) =
        write path (fun temp -> File.WriteAllText(temp, text, System.Text.UTF8Encoding(false)))

    /// Replaces the directory `path` whole: `fill` writes everything into a fresh temporary sibling
    /// (.NAME.PID.tmp), which then takes the place of `path` (any old one is moved aside to .NAME.PID.old
    /// and deleted), so a reader never sees a mix of old and new files. On failure the temporary
    /// directory is removed and `path` is untouched (unless the failure is in the final two renames).
    /// Returns what `fill` returns.
    let replaceDirectory (path: string) (fill: string -> 'T) : 'T =
        let full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar)
        let parent = Path.GetDirectoryName full
        let name = Path.GetFileName full
        let temp = Path.Combine(parent, sprintf ".%s.%d.tmp" name System.Environment.ProcessId)
        let old = Path.Combine(parent, sprintf ".%s.%d.old" name System.Environment.ProcessId)
        if Directory.Exists temp then Directory.Delete(temp, true)
        Directory.CreateDirectory temp |> ignore
        try
            let result = fill temp
            if Directory.Exists full then Directory.Move(full, old)
            Directory.Move(temp, full)
            if Directory.Exists old then Directory.Delete(old, true)
            result
        with _ ->
            if Directory.Exists temp then Directory.Delete(temp, true)
            reraise ()
