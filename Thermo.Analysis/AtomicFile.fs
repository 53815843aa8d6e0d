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
