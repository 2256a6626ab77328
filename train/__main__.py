from train.loop import main

raise SystemExit(main())
