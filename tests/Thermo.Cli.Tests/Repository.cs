namespace Thermo.Cli.Tests;

/// <summary>The checkout the tests run in.</summary>
public static class Repository
{
    /// <summary>The folder holding Thermo.sln, above the test assembly.</summary>
    public static string Root { get; } = Find();

    static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Thermo.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("no Thermo.sln above the test assembly");
    }
}
