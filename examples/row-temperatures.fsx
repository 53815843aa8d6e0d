// How unequal the rows (units) of a layer are in temperature, and whether that is a property of the
// rows or noise: for each analysed run (after `thermo analyze RUN --groups filter`), the spread of
// the layer's unit temperatures (largest ÷ smallest, and the hottest tenth's share of the layer's
// kinetic energy) and the Spearman ρ between the rankings of the units from the window's two halves
// (1: the same rows are hot throughout; 0: a fresh draw each half). Build once first (`dotnet fsi
// build.fsx build`), then:
//
//   dotnet fsi examples/row-temperatures.fsx LAYER RUN [RUN …]
#load "ThermoBuild.fsx"

open System
open Thermo.Analysis.Statistics
open Thermo.Analysis.Engine

let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length < 2 then
    eprintfn "usage: dotnet fsi examples/row-temperatures.fsx LAYER RUN [RUN …]"
    exit 2
let layer = args[0]

printfn "| run | units | T largest ÷ smallest | hottest tenth's share of the kinetic energy | ρ of the two halves' rankings | its p |"
printfn "|---|---|---|---|---|---|"
for run in args[1..] do
    let t = (AnalysisTables.unitTemperatures run layer).Temperature
    let sorted = Array.sortDescending t
    let tenth = max 1 (t.Length / 10)
    let share = (Array.sum sorted[.. tenth - 1]) / Array.sum sorted
    let rho = MultipleTests.halfWindowStability (AnalysisTables.unitInstantaneous run layer)
    printfn "| %s | %d | %.0f | %.2f | %.2f | %.1g |" run t.Length (Array.max t / Array.min t) share rho (PairedTests.spearmanPValue rho t.Length)
