namespace Thermo.Analysis.Physics

open System
open Thermo.Analysis
open Thermo.Analysis.Run

/// What one step of a run's time series is: an epoch (the per-epoch snapshots) or an optimiser step
/// (the per-step snapshots of `train --step-snapshots`, docs/THEORY.md: the thermodynamic paper's Δt).
type TimeUnit =
    | Epoch = 0
    | Step = 1

/// The one wording of a series' time unit, in messages, tables and JSON alike.
module TimeUnits =
    /// `epoch` or `step`: how tables (the time_unit column), run.json and messages name `unit`.
    [<CompiledName("Name")>]
    let name (unit: TimeUnit) = if unit = TimeUnit.Step then "step" else "epoch"

    /// The unit `name` names: `step` is `TimeUnit.Step`, anything else (`epoch`, a file older than
    /// the time_unit column) `TimeUnit.Epoch`.
    [<CompiledName("Parse")>]
    let parse (text: string) = if text = name TimeUnit.Step then TimeUnit.Step else TimeUnit.Epoch

    /// A time in its unit: "epoch 3", "step 1410".
    [<CompiledName("Format")>]
    let format (unit: TimeUnit) (time: int64) = sprintf "%s %d" (name unit) time

/// How the user asks for the equilibrium window.
type WindowSpec =
    /// Find the window from metrics (see `Window.findEquilibrium`).
    | Auto
    /// The last N epochs of the run: snapshots [E − N, E].
    | Last of int
    /// Snapshots [a, b].
    | Between of int * int

/// A resolved equilibrium window [a, b] of snapshot times (epochs or steps). Evenly spaced, every
/// `Interval` time units (the run's snapshot interval: Δt), so n = (b − a) / Interval velocities; or
/// unevenly spaced (a checkpoint series), `Interval` 0 and each velocity its own Δt.
type EquilibriumWindow =
    { From: int
      To: int
      /// Time units between consecutive snapshots of an evenly spaced window (1 for a run
      /// snapshotted every epoch); 0 when the window's snapshots are unevenly spaced.
      Interval: int
      /// How it was chosen, stated in every output.
      Rule: string
      /// The window's snapshot times, From … To.
      Times: int[] }

    /// n: the velocities inside the window, one per interval between consecutive snapshots.
    member w.Velocities = w.Times.Length - 1
    /// The window's snapshot times (epochs of a per-epoch series).
    member w.Epochs = w.Times
    /// True when every interval of the window has the same length.
    member w.IsEven = w.Interval > 0
    /// Δt_i = t_i − t_{i−1} of each velocity, in time units.
    member w.Intervals = w.Times |> Array.pairwise |> Array.map (fun (a, b) -> b - a)
    /// "every K epochs" or "uneven (Δt from A to B steps)": how the window is spaced, for outputs.
    member w.Spacing =
        if w.IsEven then sprintf "even, dt %d" w.Interval
        else
            let gaps = w.Intervals
            sprintf "uneven, dt %d..%d" (Array.min gaps) (Array.max gaps)
    override w.ToString() = sprintf "[%d, %d] (%s)" w.From w.To w.Rule

    /// An evenly spaced window [from, to] every `interval`.
    static member Even(from: int, until: int, interval: int, rule: string) =
        { From = from; To = until; Interval = interval; Rule = rule; Times = [| from .. interval .. until |] }

/// The equilibrium window: parsing, resolution against a run, and the `auto` rule.
module Window =
    let private failAt path fmt = Errors.artifactAt path fmt
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

    /// Relaxation times the `auto` rule waits for: the window starts `RelaxationTimes`·τ̂ after the
    /// first epoch (τ̂ the fitted time constant of the metrics' decay). 4 rather than 3 leaves room for
    /// τ̂ underestimating τ by a quarter under noise; the synthetic runs of the tests measure it.
    [<Literal>]
    let RelaxationTimes = 4.0

    /// The decay y(t) ≈ c + A·exp(−(t − t₀)/τ) fitted by least squares over a log-spaced grid of τ
    /// (c and A are linear given τ): (τ, A), or (0, 0) when the fitted amplitude |A| is within three
    /// noise levels — no transient to wait for.
    let relaxation (epochs: int[]) (y: float[]) =
        let t0 = float epochs[0]
        let t = epochs |> Array.map (fun e -> float e - t0)
        let span = t[t.Length - 1]
        let noise = successiveDifferenceNoise y
        if span <= 0.0 then 0.0, 0.0
        else
            let grid = Array.init 240 (fun i -> 0.25 * Math.Pow(span / 0.25, float i / 239.0))
            let fit (tau: float) =
                let x = t |> Array.map (fun ti -> exp (-ti / tau))
                let line = Fits.line x y
                let sse = Array.fold2 (fun acc xi yi -> acc + (yi - line.Intercept - line.Slope * xi) ** 2.0) 0.0 x y
                sse, line.Slope
            let tau, (_, amplitude) = grid |> Array.map (fun tau -> tau, fit tau) |> Array.minBy (fun (_, (sse, _)) -> sse)
            if abs amplitude <= 3.0 * noise then 0.0, 0.0 else tau, amplitude

    /// Time constant τ̂ of the series' decay (0: no transient), see `relaxation`.
    let relaxationTime (epochs: int[]) (y: float[]) = fst (relaxation epochs y)

    /// The `auto` rule: fit the relaxation of test loss and of test accuracy to an exponential, take the
    /// slower time constant τ̂, and start the window at the earliest epoch s ≥ t₀ + `RelaxationTimes`·τ̂
    /// whose tail s..E holds at least `MinimumAutoEpochs` epochs and, once the fitted decay is taken out
    /// of each series, has no trend beyond its own noise (least-squares slope times the tail's span at
    /// most twice the noise, estimated from successive differences so that a trend does not inflate
    /// it). `None` when no such tail exists: a run still drifting in some other way (a steady trend,
    /// over-fitting) has no equilibrium. A flatness test on the raw series alone starts too early on a
    /// noisy relaxation and waits far too long on a clean one; waiting 4 τ̂ leaves e^−8 of the
    /// transient's squared velocity at the window's start.
    let findEquilibrium (epochs: int[]) (testLoss: float[]) (testAccuracy: float[]) : int option =
        let n = epochs.Length
        if n < MinimumAutoEpochs then None
        else
            let t0 = float epochs[0]
            let withoutDecay (series: float[]) =
                let tau, amplitude = relaxation epochs series
                tau, (if tau = 0.0 then series else series |> Array.mapi (fun i y -> y - amplitude * exp (-(float epochs[i] - t0) / tau)))
            let (lossTau, loss), (accuracyTau, accuracy) = withoutDecay testLoss, withoutDecay testAccuracy
            let flat (s: int) (series: float[]) =
                let x = epochs[s..] |> Array.map float
                let y = series[s..]
                let fit = Fits.line x y
                abs fit.Slope * (x[x.Length - 1] - x[0]) <= 2.0 * successiveDifferenceNoise y
            let tau = max lossTau accuracyTau
            let earliest = t0 + RelaxationTimes * tau
            seq { 0 .. n - MinimumAutoEpochs }
            |> Seq.filter (fun s -> float epochs[s] >= earliest)
            |> Seq.tryFind (fun s -> flat s loss && flat s accuracy)
            |> Option.map (fun s -> epochs[s])

    /// The snapshot epochs nearest `epoch` from below and above (for an error message).
    let private nearest (available: int[]) (epoch: int) =
        let below = available |> Array.filter (fun e -> e <= epoch) |> Array.tryLast
        let above = available |> Array.tryFind (fun e -> e >= epoch)
        [ below; above ] |> List.choose id |> List.distinct |> List.map string |> String.concat " or "

    /// The window [a, b] on the run's snapshots: both ends must be snapshots and the snapshots between
    /// them evenly spaced (their spacing is Δt); otherwise a `SettingException` naming the nearest valid ends.
    let private checkEnds (run: string) (available: int[]) (a: int) (b: int) (rule: string) =
        let present = Set.ofArray available
        if not (present.Contains a) || not (present.Contains b) then
            let ends = [ if not (present.Contains a) then sprintf "start %d (nearest snapshots: %s)" a (nearest available a)
                         if not (present.Contains b) then sprintf "end %d (nearest snapshots: %s)" b (nearest available b) ]
            badWindow run "%s: the window's %s has no snapshot; a window's ends must fall on snapshots" rule (String.concat " and its " ends)

    let private onSnapshots (run: string) (available: int[]) (a: int) (b: int) (rule: string) =
        checkEnds run available a b rule
        let present = Set.ofArray available
        let inside = available |> Array.filter (fun e -> e >= a && e <= b)
        let allGaps = inside |> Array.pairwise |> Array.map (fun (x, y) -> y - x)
        let gaps = allGaps |> Array.distinct
        if gaps.Length <> 1 then
            // A run trained with --snapshot-every K whose last epoch is off the interval has, over the
            // whole run, one gap K everywhere but a shorter one at its very end: an interval change, not damage.
            let runGaps = available |> Array.pairwise |> Array.map (fun (x, y) -> y - x)
            let regular = runGaps[0 .. runGaps.Length - 2] |> Array.distinct
            if b = available[available.Length - 1] && regular.Length = 1 && runGaps[runGaps.Length - 1] < regular[0] then
                badWindow run "%s: the run's last snapshot (%d) is only %d epochs after the one before, not %d; end the window at %d (e.g. %d:%d)"
                    rule b allGaps[allGaps.Length - 1] regular[0] inside[inside.Length - 2] a inside[inside.Length - 2]
            let smallest = Array.min gaps
            // Gaps that are all multiples of the smallest are files missing from a regular series (a
            // damaged run); others are a run whose interval changes.
            if gaps |> Array.forall (fun g -> g % smallest = 0) then
                let missing = [| a .. smallest .. b |] |> Array.filter (fun e -> not (present.Contains e))
                let shown = missing |> Array.truncate 20 |> Array.map string
                failAt run "window %d:%d lacks the snapshots of epochs %s%s" a b (String.Join(", ", shown)) (if missing.Length > 20 then ", …" else "")
            badWindow run "%s: the snapshots of %d..%d are not evenly spaced (gaps of %s epochs); choose ends within an evenly spaced stretch" rule a b (gaps |> Array.map string |> String.concat ", ")
        EquilibriumWindow.Even(a, b, gaps[0], rule)

    /// Resolves a spec against the snapshot epochs a run has (sorted) and, for `Auto`, its metrics
    /// (epoch, test loss, test accuracy). `last:N` is the last N epochs. A window's ends must be
    /// snapshots and the snapshots inside evenly spaced (a run trained with `--snapshot-every K` is
    /// analysed with Δt = K epochs). Raises `SettingException` (`Window`) for a window the run cannot
    /// give, `ArtifactException` for a run with fewer than two snapshots.
    let resolve (run: string) (available: int[]) (metrics: (int[] * float[] * float[]) option) (spec: WindowSpec) : EquilibriumWindow =
        if available.Length < 2 then failAt run "needs at least two snapshots, has %d" available.Length
        let last = available[available.Length - 1]
        let first = available[0]
        match spec with
        | Last n ->
            if n > last - first then badWindow run "last:%d is longer than the run (snapshots %d..%d)" n first last
            onSnapshots run available (last - n) last (sprintf "last:%d" n)
        | Between(a, b) ->
            if a < first || b > last then badWindow run "%d:%d lies outside the run (snapshots %d..%d)" a b first last
            onSnapshots run available a b (sprintf "%d:%d" a b)
        | Auto ->
            match metrics with
            | None -> badWindow run "auto needs %s; pass last:N or a:b" RunLayout.MetricsFile
            | Some(epochs, loss, accuracy) ->
                // Epoch 0 (the initialisation) has no training metrics of its own; it never starts a tail.
                let keep = epochs |> Array.mapi (fun i e -> i, e) |> Array.filter (fun (_, e) -> e >= 1 && e <= last) |> Array.map fst
                let pick (a: 'a[]) = keep |> Array.map (fun i -> a[i])
                // The window starts at the first snapshot at or after the rule's epoch and ends at the
                // last snapshot, or, when the run's last epoch is off its snapshot interval, at the
                // last snapshot before that short final gap; it must keep `MinimumAutoEpochs` epochs.
                let window (start: int) =
                    let from = available |> Array.tryFind (fun e -> e >= start)
                    let gaps = available |> Array.pairwise |> Array.map (fun (x, y) -> y - x)
                    let ends = if gaps.Length >= 2 && gaps[gaps.Length - 1] < gaps[gaps.Length - 2] then [ available[available.Length - 2]; last ] else [ last ]
                    from |> Option.bind (fun a ->
                        ends |> List.tryPick (fun b ->
                            let inside = available |> Array.filter (fun e -> e >= a && e <= b)
                            let even = (inside |> Array.pairwise |> Array.map (fun (x, y) -> y - x) |> Array.distinct).Length = 1
                            if even && b - a >= MinimumAutoEpochs then Some(a, b) else None))
                match findEquilibrium (pick epochs) (pick loss) (pick accuracy) |> Option.bind window with
                | Some(a, b) ->
                    onSnapshots run available a b "auto: 4 fitted relaxation times of test loss and accuracy, then no other trend beyond twice their noise"
                | None -> badWindow run "auto found no equilibrium (test loss or accuracy still trends over every tail of ≥ %d epochs, or too few evenly spaced snapshots after it); pass last:N or a:b" MinimumAutoEpochs

    /// Resolves a spec against the snapshot times of a series whose spacing may be uneven by design
    /// (a checkpoint series saved every 500 steps then every 1000, or log-spaced): both ends must be
    /// snapshots, and every snapshot between them is in the window whatever its gap, each velocity
    /// with its own Δt. A window whose snapshots happen to be evenly spaced comes back as `resolve`
    /// gives it. `last:N` is the last N time units, from the first snapshot inside them; `a:b` needs
    /// snapshots at both ends; `auto` needs metrics (time, test or eval loss, accuracy) and starts at
    /// the first snapshot at or after the rule's start. `directory` is where the series lies: the
    /// `Run` of a window it refuses, the `Path` of a series with too few snapshots.
    let resolveUneven (directory: string) (available: int[]) (metrics: (int[] * float[] * float[]) option) (spec: WindowSpec) : EquilibriumWindow =
        if available.Length < 2 then failAt directory "needs at least two snapshots, has %d" available.Length
        let first, last = available[0], available[available.Length - 1]
        let window (a: int) (b: int) (rule: string) =
            checkEnds directory available a b rule
            let inside = available |> Array.filter (fun t -> t >= a && t <= b)
            match inside |> Array.pairwise |> Array.map (fun (x, y) -> y - x) |> Array.distinct with
            | [| gap |] -> EquilibriumWindow.Even(a, b, gap, rule)
            | _ -> { From = a; To = b; Interval = 0; Rule = rule; Times = inside }
        match spec with
        | Last n ->
            if n > last - first then badWindow directory "last:%d is longer than the series (snapshots %d..%d)" n first last
            // Checkpoints rarely fall on last − N exactly: the window starts at the first one inside it.
            let start = available |> Array.find (fun t -> t >= last - n)
            if start = last then badWindow directory "last:%d holds no snapshot before the last (%d); take a longer window" n last
            window start last (if start = last - n then sprintf "last:%d" n else sprintf "last:%d (from %d, the first snapshot inside it)" n start)
        | Between(a, b) ->
            if a < first || b > last then badWindow directory "%d:%d lies outside the series (snapshots %d..%d)" a b first last
            window a b (sprintf "%d:%d" a b)
        | Auto ->
            match metrics with
            | None -> badWindow directory "auto needs metrics (a metrics file or the trainer's log history), and this series has none; pass last:N or a:b"
            | Some(times, loss, accuracy) ->
                let start = findEquilibrium times loss accuracy |> Option.bind (fun s -> available |> Array.tryFind (fun t -> t >= s))
                match start with
                | Some a when a < last && (available |> Array.filter (fun t -> t >= a)).Length >= 3 ->
                    window a last "auto: 4 fitted relaxation times of eval loss and accuracy, then no other trend beyond twice their noise"
                | _ -> badWindow directory "auto found no equilibrium (loss or accuracy still trends, or fewer than three snapshots after it); pass last:N or a:b"

type WindowSpec with
    /// Parses `auto`, `last:N` or `a:b`, raising `SettingException` (`Window`) otherwise.
    static member Parse(text: string) : WindowSpec =
        match Window.parse text with
        | Ok spec -> spec
        | Error detail -> raise (SettingException(AnalysisSetting.Window, "", detail))
