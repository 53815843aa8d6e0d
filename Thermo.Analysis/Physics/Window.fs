namespace Thermo.Analysis

open System

/// How the user asks for the equilibrium window.
type WindowSpec =
    /// Find the window from metrics (see `Window.findEquilibrium`).
    | Auto
    /// The last N velocities of the run: snapshots [E − N, E].
    | Last of int
    /// Snapshots [a, b].
    | Between of int * int

/// A resolved equilibrium window [a, b] of snapshot indices, n = b − a velocities.
type EquilibriumWindow =
    { From: int
      To: int
      /// How it was chosen, stated in every output.
      Rule: string }

    member w.Velocities = w.To - w.From
    override w.ToString() = sprintf "[%d, %d] (%s)" w.From w.To w.Rule

/// The equilibrium window: parsing, resolution against a run, and the `auto` rule.
module Window =
    let private fail fmt = Errors.artifact fmt
    let private badWindow (run: string) fmt = Errors.setting AnalysisSetting.Window run fmt

    /// Parses `auto`, `last:N` or `a:b`; the error reads as the text after a flag ("soon: expected
    /// auto, last:N or a:b").
    let parse (text: string) : Result<WindowSpec, string> =
        let t = text.Trim().ToLowerInvariant()
        let int (s: string) = match Int32.TryParse s with | true, v -> Some v | _ -> None
        if t = "auto" then Ok Auto
        elif t.StartsWith "last:" then
            match int (t.Substring 5) with
            | Some n when n > 0 -> Ok(Last n)
            | _ -> Error(sprintf "%s: N in last:N must be a positive integer" text)
        else
            match t.Split ':' with
            | [| a; b |] ->
                match int a, int b with
                | Some a, Some b when a >= 0 && b > a -> Ok(Between(a, b))
                | _ -> Error(sprintf "%s: a:b needs integers 0 ≤ a < b" text)
            | _ -> Error(sprintf "%s: expected auto, last:N or a:b" text)

    /// Noise of a series robust to any trend: the von Neumann estimate from successive differences,
    /// σ ≈ sqrt(Σ (y[i+1] − y[i])² / (2 (N − 1))).
    let private successiveDifferenceNoise (y: float[]) =
        let mutable s = 0.0
        for i in 1 .. y.Length - 1 do s <- s + (y[i] - y[i - 1]) ** 2.0
        sqrt (s / (2.0 * float (y.Length - 1)))

    /// Minimum number of epochs in an automatic window.
    [<Literal>]
    let MinimumAutoEpochs = 5

    /// The `auto` rule: the earliest epoch s such that, over epochs s..E, neither test loss nor test
    /// accuracy has a trend beyond its own noise — the least-squares slope times the tail's span
    /// (E − s) is at most twice the noise, estimated from successive differences so that a trend does
    /// not inflate it — and the tail holds at least `MinimumAutoEpochs` epochs. `None` when no such
    /// tail exists.
    let findEquilibrium (epochs: int[]) (testLoss: float[]) (testAccuracy: float[]) : int option =
        let n = epochs.Length
        let flat (s: int) (series: float[]) =
            let x = epochs[s..] |> Array.map float
            let y = series[s..]
            let fit = Fits.line x y
            abs fit.Slope * (x[x.Length - 1] - x[0]) <= 2.0 * successiveDifferenceNoise y
        seq { 0 .. n - MinimumAutoEpochs }
        |> Seq.tryFind (fun s -> flat s testLoss && flat s testAccuracy)
        |> Option.map (fun s -> epochs[s])

    /// Resolves a spec against the snapshot indices a run has (sorted) and, for `Auto`, its metrics
    /// (epoch, test loss, test accuracy). Raises `SettingException` (`Window`) for a window the run
    /// cannot give, `ArtifactException` for a run with fewer than two snapshots.
    let resolve (run: string) (available: int[]) (metrics: (int[] * float[] * float[]) option) (spec: WindowSpec) : EquilibriumWindow =
        if available.Length < 2 then fail "%s: needs at least two snapshots, has %d" run available.Length
        let last = available[available.Length - 1]
        let first = available[0]
        match spec with
        | Last n ->
            if n > last - first then badWindow run "last:%d is longer than the run (snapshots %d..%d)" n first last
            { From = last - n; To = last; Rule = sprintf "last:%d" n }
        | Between(a, b) ->
            if a < first || b > last then badWindow run "%d:%d lies outside the run (snapshots %d..%d)" a b first last
            { From = a; To = b; Rule = sprintf "%d:%d" a b }
        | Auto ->
            match metrics with
            | None -> badWindow run "auto needs %s; pass last:N or a:b" RunLayout.MetricsFile
            | Some(epochs, loss, accuracy) ->
                // Epoch 0 (the initialisation) has no training metrics of its own; it never starts a tail.
                let keep = epochs |> Array.mapi (fun i e -> i, e) |> Array.filter (fun (_, e) -> e >= 1 && e <= last) |> Array.map fst
                let pick (a: 'a[]) = keep |> Array.map (fun i -> a[i])
                match findEquilibrium (pick epochs) (pick loss) (pick accuracy) with
                | Some start when start < last ->
                    { From = start; To = last; Rule = "auto: earliest epoch after which test loss and accuracy trend by less than twice their noise" }
                | _ -> badWindow run "auto found no equilibrium (test loss or accuracy still trends over every tail of ≥ %d epochs); pass last:N or a:b" MinimumAutoEpochs

type WindowSpec with
    /// Parses `auto`, `last:N` or `a:b`, raising `SettingException` (`Window`) otherwise.
    static member Parse(text: string) : WindowSpec =
        match Window.parse text with
        | Ok spec -> spec
        | Error detail -> raise (SettingException(AnalysisSetting.Window, "", detail))
