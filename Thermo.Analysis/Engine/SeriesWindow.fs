namespace Thermo.Analysis.Engine

open System
open Thermo.Analysis
open Thermo.Analysis.Physics

/// Training metrics that came with a checkpoint series (its window's `auto` curves and learning
/// rates), one row per distinct time (in the series' time unit); NaN where a row has no value.
type SeriesMetrics =
    { Time: int[]
      Loss: float[]
      EvalLoss: float[]
      LearningRate: float[]
      EvalAccuracy: float[] }

/// The window of a checkpoint series, in place or imported: the same checks in one place, so both
/// ways in give the same window and so the same tables.
module SeriesWindow =
    let private failAt path fmt = Errors.artifactAt path fmt

    /// Words the outputs add when the user accepted gaps in a series whose spacing is declared.
    [<Literal>]
    let AcceptedGapsNote = "gaps accepted"

    /// The times a series declared every `interval` must have between its first and last snapshot
    /// that it lacks.
    let missingTimes (times: int[]) (interval: int) =
        let present = Set.ofArray times
        [| times[0] .. interval .. times[times.Length - 1] |] |> Array.filter (fun t -> not (present.Contains t))

    /// Raises `ArtifactException` naming the missing times when a series whose spacing is declared
    /// (`declared` every K time units) lacks snapshots and the gaps were not accepted (docs/THEORY.md:
    /// a gap is an error where the spacing is declared); its `Path` is `directory`, the directory the
    /// series lies in (where the missing snapshots belong). Returns whether gaps were accepted.
    let checkGaps (directory: string) (timeUnit: TimeUnit) (times: int[]) (declared: int option) (acceptGaps: bool) =
        let timeName = TimeUnits.name timeUnit
        match declared with
        | Some interval when interval > 0 && times.Length >= 2 ->
            let missing = missingTimes times interval
            if missing.Length > 0 && not acceptGaps then
                let shown = missing |> Array.truncate 20 |> Array.map string
                failAt directory "lacks the checkpoints of %ss %s%s (its spacing is declared: one every %d %ss); accept the gaps to analyse it as it is"
                    timeName (String.Join(", ", shown)) (if missing.Length > 20 then sprintf ", … (%d in all)" missing.Length else "") interval timeName
            missing.Length > 0
        | _ -> false

    /// The `auto` window's curves from a series' metrics: eval loss and eval accuracy where the
    /// source logs them, the training loss otherwise (for both curves when there is no accuracy).
    let autoCurves (metrics: SeriesMetrics option) : (int[] * float[] * float[]) option =
        metrics |> Option.bind (fun m ->
            let hasAny (values: float[]) = values |> Array.exists (fun v -> not (Double.IsNaN v))
            let loss = if hasAny m.EvalLoss then m.EvalLoss elif hasAny m.Loss then m.Loss else [||]
            if loss.Length = 0 then None
            else
                let accuracy = if hasAny m.EvalAccuracy then m.EvalAccuracy else loss
                let keep = Array.init m.Time.Length id |> Array.filter (fun i -> not (Double.IsNaN loss[i]) && not (Double.IsNaN accuracy[i]))
                if keep.Length = 0 then None
                else Some(keep |> Array.map (fun i -> m.Time[i]), keep |> Array.map (fun i -> loss[i]), keep |> Array.map (fun i -> accuracy[i])))

    /// (time, η) of every metrics row that gives the learning rate.
    let learningRates (metrics: SeriesMetrics option) : (int * float)[] =
        match metrics with
        | None -> [||]
        | Some m -> Array.zip m.Time m.LearningRate |> Array.filter (fun (_, eta) -> not (Double.IsNaN eta)) |> Array.distinctBy fst

    /// Resolves `spec` on a checkpoint series lying in `directory` (the run directory of an imported
    /// series, the directory of the checkpoints in place): gaps checked against the declared spacing,
    /// then `Window.resolveUneven`; the rule says when gaps were accepted.
    let resolve (directory: string) (timeUnit: TimeUnit) (times: int[]) (declared: int option) (acceptGaps: bool) (metrics: SeriesMetrics option) (spec: WindowSpec) =
        let accepted = checkGaps directory timeUnit times declared acceptGaps
        let window = Window.resolveUneven directory times (if spec = Auto then autoCurves metrics else None) spec
        if accepted then { window with Rule = sprintf "%s (%s)" window.Rule AcceptedGapsNote } else window
