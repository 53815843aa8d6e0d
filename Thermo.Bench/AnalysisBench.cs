using System.Diagnostics;
using DuckDB.NET.Data;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;

/// <summary>
/// Issue 3's benchmarks on a synthetic run (random walks, CNN-like layer shapes): `analyze` against
/// DuckDB computing the same per-filter temperatures in SQL, read throughput against DuckDB's plain
/// scan, peak memory for two window lengths, and FFT against direct MSD.
/// </summary>
static class AnalysisBench
{
    public static void Run(string scratch, bool quick, Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        int epochs = quick ? 50 : 200;
        var shapes = quick
            ? new (string, int[])[] { ("conv1", [16, 3, 5, 5]), ("conv2", [32, 16, 3, 3]), ("fc", [100, 1000]) }
            : [("conv1", [64, 3, 5, 5]), ("conv2", [128, 64, 3, 3]), ("conv3", [256, 128, 3, 3]), ("fc", [640, 1000])];
        var run = Path.Combine(scratch, "analysis-run");
        long parameters = WriteSyntheticRun(run, shapes, epochs);
        double snapshotMegabytes = parameters * 4 / 1e6;

        // Thermo: per-filter equilibrium temperatures (plus instantaneous, MSD of conv1, fits) over the whole run.
        var thermoTimes = new List<double>();
        for (int r = 0; r < 3; r++)
        {
            var sw = Stopwatch.StartNew();
            var result = Analyzer.Run(run, AnalysisOptions.Default.WithWindow(WindowSpec.NewBetween(0, epochs)).WithGrouping(Grouping.Unit).WithIncludeBias(false));
            Analyzer.Write(result);
            thermoTimes.Add(sw.Elapsed.TotalSeconds);
        }
        // DuckDB: the same definition in SQL, over the same files.
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        double Sql(string sql)
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            var sw = Stopwatch.StartNew();
            using var reader = command.ExecuteReader();
            while (reader.Read()) { }
            return sw.Elapsed.TotalSeconds;
        }
        var glob = Path.Combine(RunLayout.Snapshots(run), "*.parquet");
        var duckTimes = new List<double>();
        for (int r = 0; r < (quick ? 3 : 2); r++)
            duckTimes.Add(Sql($"""
                WITH v AS (SELECT layer, unit, epoch,
                                  value::DOUBLE - lag(value::DOUBLE) OVER (PARTITION BY layer, tensor, unit, "offset" ORDER BY epoch) AS v
                           FROM read_parquet('{glob}') WHERE tensor = 'weight')
                SELECT layer, unit, avg(0.5 * v * v) FROM v WHERE epoch > 0 GROUP BY layer, unit
                """));
        double thermo = median(thermoTimes), duck = median(duckTimes);
        report($"analyze, per-filter temperatures, {parameters / 1e6:F2}M parameters × {epochs} epochs: Thermo ÷ DuckDB SQL",
            $"{thermo:F2} s ÷ {duck:F2} s = {thermo / duck:F2}", "≤ 1.0", thermo / duck <= 1.0);

        // Read throughput: the engine's read path — every snapshot's value column streamed into one
        // reused 64 KB chunk (Snapshots.StreamValues) — against DuckDB's plain scan of the column.
        var files = SnapshotSeries.ListEpochFiles(run);
        var chunk = new float[1 << 14];
        Action<int, long, TensorEntry[]> header = (_, _, _) => { };
        Func<float[]> nextChunk = () => chunk;
        double checksum = 0;
        Action<float[], int> filled = (values, count) => checksum += values[count - 1];
        var readTimes = new List<double>();
        for (int r = 0; r < 3; r++)
        {
            var sw = Stopwatch.StartNew();
            foreach (var file in files) Snapshots.StreamValues(file.Path, header, nextChunk, filled);
            readTimes.Add(sw.Elapsed.TotalSeconds);
        }
        var scanTimes = Enumerable.Range(0, 3).Select(_ => Sql($"SELECT sum(value * value) FROM read_parquet('{glob}')")).ToList();
        double totalMegabytes = snapshotMegabytes * files.Length;
        double ours = totalMegabytes / median(readTimes), theirs = totalMegabytes / median(scanTimes);
        report("read throughput of the analysis (value columns streamed into a reused 64 KB chunk, the engine's read path) ÷ DuckDB's scan of the value column",
            $"{ours:F0} MB/s ÷ {theirs:F0} MB/s = {ours / theirs:F2}", "≥ 0.5", ours / theirs >= 0.5);

        // Peak memory of the analysis (per-filter temperatures, instantaneous T, MSD of conv1, tables
        // written) in a child process, above that process's resident set once a tiny run has been
        // analysed (runtime, native libraries and JIT in place): for a short and the full window, and
        // without the MSD trajectories, which are the one part that grows with the window.
        var tiny = Path.Combine(scratch, "analysis-tiny");
        WriteSyntheticRun(tiny, shapes.Select(s => (s.Item1, new[] { 2 }.Concat(s.Item2.Skip(1)).ToArray())).ToArray(), 3);
        int shortWindow = Math.Min(50, epochs);
        var peakAt = new Dictionary<(string, bool), double>();
        foreach (var (window, msd) in new[] { ($"0:{shortWindow}", false), ($"0:{epochs}", false), ($"0:{shortWindow}", true), ($"0:{epochs}", true) })
        {
            double peak = median(Enumerable.Range(0, 3).Select(_ => AnalysisPeakMegabytes(tiny, run, window, msd)));
            peakAt[(window, msd)] = peak;
            report($"peak memory of the analysis and its tables, window {window}{(msd ? ", with MSD of conv1" : ", no MSD")}, ÷ one snapshot ({snapshotMegabytes:F1} MB)",
                $"{peak:F1} MB ÷ {snapshotMegabytes:F1} MB = {peak / snapshotMegabytes:F2}", "≤ 3", peak / snapshotMegabytes <= 3);
        }
        // What grows with the parameters: the same analysis (no MSD, 50 epochs) of a run 4× larger; the
        // difference of the peaks over the difference of the snapshots is the memory each further
        // snapshot byte costs, free of the fixed part (runtime, reader and writer buffers).
        var large = Path.Combine(scratch, "analysis-run-4x");
        // Four times the weights per unit, the same units: the per-unit tables stay the same size.
        var largeShapes = shapes.Select(s => (s.Item1, new[] { s.Item2[0], s.Item2[1] * 4 }.Concat(s.Item2.Skip(2)).ToArray())).ToArray();
        double largeMegabytes = WriteSyntheticRun(large, largeShapes, shortWindow) * 4 / 1e6;
        double largePeak = median(Enumerable.Range(0, 3).Select(_ => AnalysisPeakMegabytes(tiny, large, $"0:{shortWindow}", false)));
        double smallPeak = peakAt[($"0:{shortWindow}", false)];
        double slope = (largePeak - smallPeak) / (largeMegabytes - snapshotMegabytes);
        report($"memory per further snapshot byte: (peak at {largeMegabytes:F1} MB − peak at {snapshotMegabytes:F1} MB snapshots) ÷ their difference, window 0:{shortWindow}, no MSD",
            $"({largePeak:F1} − {smallPeak:F1} MB) ÷ {largeMegabytes - snapshotMegabytes:F1} MB = {slope:F2}; fixed part {smallPeak - slope * snapshotMegabytes:F1} MB", "≤ 3", slope <= 3);
        if (Environment.GetEnvironmentVariable("THERMO_PROBE_DEBUG") is null) Directory.Delete(large, true);

        // MSD of a 64-weight group at n = 1000 lags (and 4000, to show the n / log n growth): the FFT
        // path (the group's spectra summed, one inverse transform) against the mean of the weights'
        // direct O(n²) sums, per weight.
        foreach (int points in new[] { 1001, 4001 })
        {
            var rng = new Random(1);
            var group = Enumerable.Range(0, 64).Select(_ =>
            {
                var x = new double[points];
                for (int i = 1; i < x.Length; i++) x[i] = x[i - 1] + rng.NextDouble() - 0.5;
                return x;
            }).ToArray();
            // Warm both paths past the JIT's tiering thresholds, so the comparison is of optimised code.
            for (int i = 0; i < 40; i++) { Diffusion.groupMsd(group); Diffusion.msdDirect(group[i]); }
            Thread.Sleep(200);
            double PerTrajectory(Action run)
            {
                var sw = Stopwatch.StartNew();
                run();
                return sw.Elapsed.TotalSeconds / group.Length;
            }
            var fft = Enumerable.Range(0, 7).Select(_ => PerTrajectory(() => Diffusion.groupMsd(group))).ToList();
            var direct = Enumerable.Range(0, 5).Select(_ => PerTrajectory(() => { foreach (var x in group) Diffusion.msdDirect(x); })).ToList();
            report($"MSD of a 64-weight group of {points}-point trajectories, all {points - 1} lags, per weight: direct O(n²) ÷ FFT",
                $"{median(direct) * 1e3:F3} ms ÷ {median(fft) * 1e3:F3} ms = {median(direct) / median(fft):F0}×", "≥ 20× at n = 1000",
                points == 1001 ? median(direct) / median(fft) >= 20 : null);
        }
        if (Environment.GetEnvironmentVariable("THERMO_PROBE_DEBUG") is null) Directory.Delete(tiny, true);
        if (Environment.GetEnvironmentVariable("THERMO_PROBE_DEBUG") is null) Directory.Delete(run, true);
    }

    static long WriteSyntheticRun(string run, (string Layer, int[] Shape)[] shapes, int epochs)
    {
        var rng = new Random(7);
        var values = shapes.Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()).ToArray();
        for (int e = 0; e <= epochs; e++)
        {
            if (e > 0)
                foreach (var v in values)
                    for (int i = 0; i < v.Length; i++) v[i] += (float)((rng.NextDouble() - 0.5) * 1e-3);
            var tensors = shapes.Select((s, i) => new TensorSnapshot(s.Layer, "weight", s.Shape, (float[])values[i].Clone())).ToArray();
            SnapshotWriter.write(SnapshotFileFormat.Parquet, Path.Combine(RunLayout.Snapshots(run), SnapshotSchema.fileName(SnapshotFileFormat.Parquet, e)), new Snapshot(e, e, tensors));
        }
        return values.Sum(v => (long)v.Length);
    }

    /// Runs `Probe` in a child process and returns the peak it reports, in MB.
    static double AnalysisPeakMegabytes(string tiny, string run, string window, bool msd)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Thermo.Bench.dll"), ProbeVerb, tiny, run, window, msd ? "msd" : "no-msd" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"memory probe failed: {error.Result}");
        return double.Parse(output.Result.Trim(), System.Globalization.CultureInfo.InvariantCulture) / 1e6;
    }

    public const string ProbeVerb = "--analysis-memory-probe";

    /// The child side: analyse the tiny run (and write its tables), collect, take the resident set as
    /// the baseline, reset the kernel's peak (VmHWM) counter, analyse the real run the same way and print
    /// the peak's growth above the baseline in bytes. Everything the analysis touches counts: managed
    /// heap, native Parquet buffers, the output tables.
    public static void Probe(string tiny, string run, string window, bool msd)
    {
        AnalysisOptions Options(string w)
        {
            var options = AnalysisOptions.Default.WithWindow(WindowSpec.NewBetween(int.Parse(w.Split(':')[0]), int.Parse(w.Split(':')[1])))
                .WithGrouping(Grouping.Unit).WithIncludeBias(false);
            return msd ? options : options.WithMsdLayers([]);
        }
        Analyzer.Write(Analyzer.Run(tiny, Options("0:3")));
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        long baseline = StatusBytes("VmRSS:");
        if (Environment.GetEnvironmentVariable("THERMO_PROBE_DEBUG") is not null)
            Console.Error.WriteLine($"baseline: rss {baseline}, committed {GC.GetGCMemoryInfo().TotalCommittedBytes}, heap {GC.GetGCMemoryInfo().HeapSizeBytes}, allocated {GC.GetTotalAllocatedBytes()}");
        File.WriteAllText("/proc/self/clear_refs", "5");
        var result = Analyzer.Run(run, Options(window));
        if (Environment.GetEnvironmentVariable("THERMO_PROBE_DEBUG") is not null)
            Console.Error.WriteLine($"after analyze: hwm {StatusBytes("VmHWM:") - baseline}, rss {StatusBytes("VmRSS:") - baseline}, committed {GC.GetGCMemoryInfo().TotalCommittedBytes}, heap {GC.GetGCMemoryInfo().HeapSizeBytes}, allocated {GC.GetTotalAllocatedBytes()}");
        Analyzer.Write(result);
        long peak = StatusBytes("VmHWM:");
        Console.WriteLine(peak - baseline);
    }

    static long StatusBytes(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}
