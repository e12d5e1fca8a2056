"""The workbench's pages: Live, Timeline and History, each given the tab's analyst session."""
