using System.Diagnostics;
using Thermo.Trainer.Data;
using Thermo.Trainer.Training;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Thermo.Trainer.Tests;

/// <summary>A fresh temporary directory, removed on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("thermo-trainer-tests-").FullName;
    public string this[string relative] => System.IO.Path.Combine(Path, relative);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}

/// <summary>Small data sets written in the real file formats.</summary>
public static class TinyData
{
    /// <summary>
    /// Writes MNIST-format IDX files of 28×28 images whose label is drawn as a bright vertical bar
    /// (so a model can learn something), with deterministic noise.
    /// </summary>
    public static string WriteMnistLike(string dir, int train = 640, int test = 160, bool gzip = false)
    {
        Directory.CreateDirectory(dir);
        var random = new Random(7);
        void Split(string prefix, int count)
        {
            var pixels = new byte[count * 784];
            var labels = new byte[count];
            for (int i = 0; i < count; i++)
            {
                labels[i] = (byte)(i % 10);
                for (int p = 0; p < 784; p++)
                {
                    int column = p % 28;
                    bool bar = column >= 2 + 2 * labels[i] && column < 4 + 2 * labels[i];
                    pixels[i * 784 + p] = (byte)Math.Clamp((bar ? 200 : 0) + random.Next(0, 56), 0, 255);
                }
            }
            Idx.Write(System.IO.Path.Combine(dir, $"{prefix}-images-idx3-ubyte"), [count, 28, 28], pixels);
            Idx.Write(System.IO.Path.Combine(dir, $"{prefix}-labels-idx1-ubyte"), [count], labels);
            if (gzip)
                foreach (var kind in new[] { "images-idx3", "labels-idx1" })
                {
                    var raw = System.IO.Path.Combine(dir, $"{prefix}-{kind}-ubyte");
                    using (var output = File.Create(raw + ".gz"))
                    using (var gz = new System.IO.Compression.GZipStream(output, System.IO.Compression.CompressionLevel.Fastest))
                        gz.Write(File.ReadAllBytes(raw));
                    File.Delete(raw);
                }
        }
        Split("train", train);
        Split("t10k", test);
        return dir;
    }

    /// <summary>A quick training configuration over <paramref name="dataDir"/>.</summary>
    public static TrainConfig QuickConfig(string dataDir, int epochs = 2) => new()
    {
        DataDir = dataDir, Epochs = epochs, BatchSize = 64, Widths = [4, 4, 8, 8], Threads = 1,
    };
}

/// <summary>Runs the real <c>thermo</c> executable as a child process.</summary>
public static class ThermoProcess
{
    /// <summary>thermo.dll in the trainer's own build output (same configuration as this test assembly).</summary>
    public static string Executable { get; } = Locate();

    static string Locate()
    {
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory);
        var framework = baseDir.Name;
        var configuration = baseDir.Parent!.Name;
        var root = baseDir;
        while (root is not null && !File.Exists(System.IO.Path.Combine(root.FullName, "Thermo.sln"))) root = root.Parent;
        if (root is null) throw new InvalidOperationException("cannot find Thermo.sln above " + AppContext.BaseDirectory);
        var path = System.IO.Path.Combine(root.FullName, "Thermo.Cli", "bin", configuration, framework, "thermo.dll");
        if (!File.Exists(path)) throw new InvalidOperationException($"{path} is missing: build Thermo.Cli first");
        return path;
    }

    public static ProcessStartInfo StartInfo(string artifacts, params string[] args)
    {
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add(Executable);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["THERMO_ARTIFACTS"] = artifacts;
        return psi;
    }

    /// <summary>
    /// Starts thermo and kills it (with its children) once <paramref name="runDir"/>'s manifest records
    /// <paramref name="epoch"/> complete epochs, <paramref name="settle"/> later: an interruption
    /// somewhere inside the following epochs. Fails if the child finishes first or stalls for 3 minutes.
    /// </summary>
    public static void KillAfterEpoch(string artifacts, string runDir, int epoch, TimeSpan settle, params string[] args)
    {
        using var child = Process.Start(StartInfo(artifacts, args))!;
        _ = child.StandardOutput.ReadToEndAsync();
        _ = child.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while ((RunManifest.TryLoadQuietly(runDir)?.LastCompleteEpoch ?? -1) < epoch)
        {
            if (child.HasExited) throw new InvalidOperationException($"thermo finished before epoch {epoch} could be interrupted: {string.Join(' ', args)}");
            if (DateTime.UtcNow > deadline)
            {
                child.Kill(entireProcessTree: true);   // no training left running behind a failed test
                throw new TimeoutException($"thermo made no progress to epoch {epoch}: {string.Join(' ', args)}");
            }
            Thread.Sleep(20);
        }
        Thread.Sleep(settle);
        child.Kill(entireProcessTree: true);
        child.WaitForExit();
    }

    /// <summary>Runs thermo to completion; returns exit code, stdout and stderr.</summary>
    public static (int Code, string Out, string Err) Run(string artifacts, params string[] args)
    {
        using var p = Process.Start(StartInfo(artifacts, args))!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(true); throw new TimeoutException("thermo " + string.Join(' ', args)); }
        return (p.ExitCode, output, err.Result);
    }
}
