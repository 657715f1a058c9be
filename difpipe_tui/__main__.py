from difpipe_tui.entry import run

if __name__ == "__main__":
    run()
