using System.Diagnostics;
using System.Text.RegularExpressions;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Physics;
using Thermo.Pipeline.Pruning;
using Thermo.Pipeline.Protocols;
using Thermo.Trainer.Evaluation;
using Thermo.Trainer.Training;

/// <summary>
/// Issue 4's benchmark: the whole of <c>thermo prune</c> over 10 runs (a child process, as a user runs
/// it) against the number of evaluations it makes times one test-set evaluation measured in this
/// process, so the ratio is the overhead of loading, rebuilding and bookkeeping around the evaluations.
/// </summary>
static class PruningBench
{
    public static void Run(string scratch, string artifacts, bool quick, Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        int runs = quick ? 3 : 10, testImages = 500;
        var runDirs = new List<string>();
        for (int seed = 1; seed <= runs; seed++)
        {
            // Short trainings: the benchmark is about evaluation, not about the weights' quality.
            var config = new TrainConfig { Dataset = "mnist-10k", Epochs = 2, Seed = seed, TrainLimit = 1000, TestLimit = testImages };
            var dir = Path.Combine(scratch, "prune", $"seed-{seed}");
            using (var run = TrainingRun.Start(config, dir, artifacts, new SilentProgress())) run.Run();
            Analyzer.Write(Analyzer.Run(dir, AnalysisOptions.Default.WithWindow(WindowSpec.NewLast(2))));
            runDirs.Add(dir);
        }

        // One test-set evaluation, in this process, warmed.
        double evaluation;
        using (var tests = new TestSetCache())
        using (var model = RunModel.Open(runDirs[0], artifacts, tests, _ => { }))
        {
            for (int i = 0; i < 3; i++) model.Evaluate(FilterMask.None("conv1"));
            evaluation = median(Enumerable.Range(0, 9).Select(i =>
            {
                var sw = Stopwatch.StartNew();
                model.Evaluate(new FilterMask("conv1", i % 2 == 0 ? [] : [i % 12]));
                return sw.Elapsed.TotalSeconds;
            }));
        }

        var times = new List<double>();
        int evaluations = 0;
        for (int r = 0; r < (quick ? 1 : 3); r++)
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "thermo.dll"), "prune" }.Concat(runDirs).Concat(["--curves", "none"]))
                psi.ArgumentList.Add(a);
            psi.Environment["THERMO_ARTIFACTS"] = artifacts;
            var sw = Stopwatch.StartNew();
            using var p = Process.Start(psi)!;
            var error = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            times.Add(sw.Elapsed.TotalSeconds);
            if (p.ExitCode != 0) throw new InvalidOperationException($"thermo prune failed: {error.Result}");
            // Each run reports "N test-set evaluations (…)".
            evaluations = Regex.Matches(error.Result, @"(\d+) test-set evaluations").Sum(m => int.Parse(m.Groups[1].Value));
        }
        double whole = median(times);
        double ratio = whole / (evaluations * evaluation);
        report($"baseline: one test-set evaluation ({testImages} images, fourconv) in this process", $"{evaluation * 1e3:F1} ms, {testImages / evaluation:F0} images/s", "—", null);
        report($"whole `thermo prune` over {runs} runs (4 criteria, 5 random draws, no curves) ÷ ({evaluations} evaluations × one evaluation)",
            $"{whole:F1} s ÷ ({evaluations} × {evaluation * 1e3:F1} ms) = {ratio:F2}", "≤ 1.2", ratio <= 1.2);
    }
}
