// Re-analyse an archived run from its files alone — no model, no data, no retraining — with the
// Thermo.Analysis library loaded into F# interactive. Build once first (`dotnet fsi build.fsx build`),
// then:
//
//   dotnet fsi examples/reanalyze.fsx RUN [WINDOW]        WINDOW: auto (default), last:N or a:b
//
// The libraries come from the build output of the `thermo` executable, so their versions are the ones
// pinned in Directory.Packages.props.
#load "ThermoBuild.fsx"

open Thermo.Analysis
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine

let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length < 1 then
    eprintfn "usage: dotnet fsi examples/reanalyze.fsx RUN [auto|last:N|a:b]"
    exit 2
let run = args[0]
let window =
    match (if args.Length > 1 then Window.parse args[1] else Ok Auto) with
    | Ok w -> w
    | Error message -> eprintfn "window: %s" message; exit 2

// The streaming engine: one pass over the window's snapshots.
let result =
    try Engine.analyze run { AnalysisOptions.Default with Window = window; MsdLayers = Some [||] }
    with ArtifactException message -> eprintfn "%s" message; exit 2

printfn "%s: window %d..%d (%s), T = %s" run result.Window.From result.Window.To result.Window.Rule result.Physics.Describe
for layer in result.Layers do
    printfn "  %-8s %8d weights  T = %.4g  T_drift = %.4g  T_osc = %.4g"
        layer.Key.Layer layer.Temperature.Weights layer.Temperature.Temperature layer.Temperature.Drift layer.Temperature.Oscillation

// The same library's pure functions work on plain arrays: here the first layer's filters, hottest
// first, and how the temperature ranking agrees with the L1-norm ranking (SPEC "Rankings").
let first = result.Layers[0].Key.Layer
let units = result.Groups |> Array.filter (fun g -> g.Key.Layer = first) |> Array.sortBy (fun g -> g.Key.Unit)
let hotFirst = Ranking.descending (units |> Array.map (fun g -> g.Temperature.Temperature))
printfn "  %s filters, hottest first: %s" first (hotFirst |> Array.map string |> String.concat " ")
printfn "  Spearman(temperature, L1) = %.2f"
    (Ranking.spearman (units |> Array.map (fun g -> g.Temperature.Temperature)) (units |> Array.map (fun g -> g.L1Norm)))
