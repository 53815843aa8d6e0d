namespace Thermo.Analysis.Run

open System.IO

/// Which run a row belongs to. Runs are identified by their full path; tables and captions show the
/// shortest path suffix that tells the runs of one call apart (`a/seed-1`, `b/seed-1`), so two runs
/// with the same directory name are never averaged as one.
module RunIdentity =
    let private parts (path: string) =
        Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar)
            .Split([| Path.DirectorySeparatorChar; Path.AltDirectorySeparatorChar |], System.StringSplitOptions.RemoveEmptyEntries)

    /// For each run directory, the shortest suffix of its full path (whole directory names, joined
    /// by '/') that no other run of `runs` shares; the same directory given twice gets the same name.
    [<CompiledName("Names")>]
    let names (runs: string[]) : string[] =
        let split = runs |> Array.map parts
        let full = split |> Array.map (String.concat "/")
        let suffix (p: string[]) k = p[max 0 (p.Length - k) ..] |> String.concat "/"
        split
        |> Array.mapi (fun i p ->
            let others = [| for j in 0 .. split.Length - 1 do if full[j] <> full[i] then yield split[j] |]
            let k =
                seq { 1 .. p.Length }
                |> Seq.tryFind (fun k -> others |> Array.forall (fun o -> suffix o k <> suffix p k))
                |> Option.defaultValue p.Length
            suffix p k)
