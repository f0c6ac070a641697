import ArgumentParser
import PatchworkCLI

PatchworkCommand.main()
